"""Wall time of `enclavefl --help` and every command's --help, against a bare interpreter and a baseline revision.

    python benchmarks/bench_cli_startup.py [--repeat 5] [--baseline c5a092a] [--smoke]

Every sample is a fresh process (`python -m enclavefl.cli.main ... --help`), as a user meets it. In the same run:
`python -c pass` with the same interpreter (the floor: what any Python command costs), this tree, and the code of
`--baseline` (extracted with `git archive`; `--baseline ''` skips it). Medians of --repeat runs after one warm-up
run each (the first run also pays for the page cache); the trees alternate per command so load hits both alike.
Issue 14 asks for <= 0.5 s for every command that does not train.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def wall_ms(command: list[str], repeat: int, src: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    samples = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        if i:  # the first run is the warm-up
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def commands() -> list[tuple[str, ...]]:
    """The root, every group and every command of this tree, e.g. ("node", "serve")."""
    import typer
    from typer.core import TyperGroup

    from enclavefl.cli.main import LazyGroup, app

    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        found.append(path)
        if isinstance(command, TyperGroup):
            for name, sub in list(command.commands.items()):
                walk(command.load_command(name) if isinstance(command, LazyGroup) else sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def extract(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default="c5a092a", help="git revision to compare with ('' for none)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures"
        + " (3 commands, no baseline)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.repeat, args.baseline = 1, ""
    cli = [sys.executable, "-m", "enclavefl.cli.main"]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        base_src = extract(args.baseline, Path(tmp)) if args.baseline else None
        floor = wall_ms([sys.executable, "-c", "pass"], args.repeat, SRC)
        head = f"{'command':<46}{'this tree ms':>13}{'x python':>9}"
        print(head + (f"{'baseline ms':>13}{'this/base':>10}" if base_src else ""))
        print(f"{'python -c pass (the floor)':<46}{floor:>13.0f}{1.0:>9.1f}")
        slowest = 0.0
        for path in commands()[: 3 if args.smoke else None]:
            label = " ".join(("enclavefl", *path, "--help"))
            ms = wall_ms([*cli, *path, "--help"], args.repeat, SRC)
            slowest = max(slowest, ms)
            row = f"{label:<46}{ms:>13.0f}{ms / floor:>9.1f}"
            if base_src is not None:
                try:
                    base = wall_ms([*cli, *path, "--help"], args.repeat, base_src)
                    row += f"{base:>13.0f}{ms / base:>10.2f}"
                except subprocess.CalledProcessError:
                    row += f"{'(absent)':>13}"
            print(row, flush=True)
        print(f"slowest command of this tree: {slowest:.0f} ms ({'within' if slowest <= 500 else 'OVER'} 0.5 s)")


if __name__ == "__main__":
    main()

"""Wall time of `enclavefl --help` and each group's --help, against a bare interpreter in the same run.

    python benchmarks/bench_cli_startup.py [--repeat 5]

Every row is a fresh process (`python -m enclavefl.cli.main ... --help`), as a user meets it; the baseline
row is `python -c pass` with the same interpreter, so the ratio column is what the CLI adds. Medians of
--repeat runs after one warm-up run (the first run also pays for the page cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
GROUPS = ("attest", "enclave", "node", "data-owner", "job", "demo", "digits")


def wall_ms(command: list[str], repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    samples = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        if i:  # the first run is the warm-up
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "enclavefl.cli.main"]
    baseline = wall_ms([sys.executable, "-c", "pass"], args.repeat)
    print(f"{'command':<34} {'median ms':>10} {'x baseline':>11}")
    print(f"{'python -c pass (baseline)':<34} {baseline:>10.0f} {1.0:>11.1f}")
    for group in ("", *GROUPS):
        label = f"enclavefl {group} --help".replace("  ", " ")
        ms = wall_ms([*cli, *([group] if group else []), "--help"], args.repeat)
        print(f"{label:<34} {ms:>10.0f} {ms / baseline:>11.1f}")


if __name__ == "__main__":
    main()

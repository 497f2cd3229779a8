"""The seed job through the public CLI as real processes, this tree against a baseline revision in the same run.

    python benchmarks/bench_seed_job.py [--baseline c5a092a] [--repeats 3] [--smoke]

One run is what examples/seed-processes/run.sh does once its files exist: `enclavefl node serve` (simulated
enclave, --ephemeral), two `enclavefl data-owner run` started with `enclavefl job submit`, then `job watch` and
`job download`; the run ends when every process has exited. Keys, data, job.toml and policy.toml are written
first by the same tree's CLI and are not timed. Every command is `python -m enclavefl.cli.main` with PYTHONPATH
set to the tree under test; the baseline is `git archive BASELINE src`. Runs alternate between the trees, so
load on the shared machine hits both alike.

Reported per tree (medians over the runs):
  total        launch of the node until every process exited (the figure issue 14 asks to cut to a third)
  node ready   until the node printed that it listens
  round 1      from `job submit` returning until the node printed "round 1/10 closed" (owner start-up and the
               first training included)
  round        median interval between two consecutive "round r closed" lines of the node (rounds 2..10)
  idle RSS     the node's resident memory once it listens, before the model arrives (/proc/PID/status VmRSS)
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "seed-processes"
ROUNDS = 10


@dataclass
class Lines:
    """A child's stdout lines with the time each arrived (read by a thread as they are printed)."""

    popen: subprocess.Popen[str]
    seen: list[tuple[float, str]] = field(default_factory=list)
    reader: threading.Thread | None = None

    def start(self) -> Lines:
        def read() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                self.seen.append((time.perf_counter(), line.rstrip("\n")))

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        return self

    def first(self, text: str, timeout: float = 120.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for at, line in list(self.seen):
                if text in line:
                    return at
            if self.popen.poll() is not None and self.reader is not None and not self.reader.is_alive():
                break
            time.sleep(0.002)  # the benchmark's own wait for a line; no party waits on it
        raise RuntimeError(f"never printed {text!r}: {[line for _, line in self.seen][-10:]}")


def cli(src: Path, work: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "enclavefl.cli.main", *args], cwd=work, env=env, text=True, **popen
    )


def run_ok(src: Path, work: Path, *args: str) -> None:
    done = cli(src, work, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = done.communicate(timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"enclavefl {' '.join(args)} exited {done.returncode}:\n{out}")


def prepare(src: Path, work: Path) -> None:
    """Keys, data, job and policy, as run.sh's steps 1-3 (not timed)."""
    work.mkdir(parents=True)
    shutil.copy(EXAMPLE / "task.py", work / "task.py")
    for who in ("bob", "alice", "model-owner"):
        run_ok(src, work, "data-owner", "keygen", "--name", who, "--out", "keys")
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{EXAMPLE}"}
    subprocess.run([sys.executable, str(EXAMPLE / "make_data.py"), str(work)], check=True, env=env, capture_output=True)
    run_ok(
        src,
        work,
        "job",
        "init",
        "--name",
        "seed-bob-alice",
        "--model",
        "init.safetensors",
        "--owner",
        "bob=keys/bob.pem",
        "--owner",
        "alice=keys/alice.pem",
        "--model-owner-cert",
        "keys/model-owner.pem",
        "--rounds",
        str(ROUNDS),
        "--min-contributions",
        "2",
        "--local-steps",
        "5",
        "--lr",
        "0.1",
        "--no-weighted",
        "--deadline",
        "120",
        "--out",
        "job.toml",
    )
    run_ok(src, work, "node", "policy", "--platform-dir", "platform", "--out", "policy.toml")


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def one_run(src: Path, work: Path) -> dict[str, float]:
    """Time one seed job in `work` (prepared); every party is a process of the CLI."""
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    start = time.perf_counter()
    node = Lines(
        cli(
            src,
            work,
            "node",
            "serve",
            "--job",
            "job.toml",
            "--tee",
            "insecure-simulation",
            "--platform-dir",
            "platform",
            "--port",
            "0",
            "--port-file",
            "node.addr",
            "--ephemeral",
            **pipe,
        )
    ).start()
    children = [node.popen]
    try:
        return _timed_run(src, work, node, start, children)
    finally:  # a failed run leaves no process behind (a node would linger for its download)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _timed_run(
    src: Path, work: Path, node: Lines, start: float, children: list[subprocess.Popen[str]]
) -> dict[str, float]:
    ready = node.first("node listening on")
    idle_rss = rss_kib(node.popen.pid)
    address = (work / "node.addr").read_text().strip()
    logs = {who: (work / f"{who}.log").open("w") for who in ("bob", "alice")}
    owners = [
        cli(
            src,
            work,
            "data-owner",
            "run",
            "--node",
            address,
            "--job",
            "job.toml",
            "--policy",
            "policy.toml",
            "--task",
            "task.py:TASK",
            "--data",
            f"{who}.safetensors",
            "--key",
            f"keys/{who}.key",
            "--cert",
            f"keys/{who}.pem",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for who, log in logs.items()
    ]
    children += owners
    model_owner = (
        "--node",
        address,
        "--job",
        "job.toml",
        "--policy",
        "policy.toml",
        "--key",
        "keys/model-owner.key",
        "--cert",
        "keys/model-owner.pem",
    )
    run_ok(src, work, "job", "submit", *model_owner, "--model", "init.safetensors")
    submitted = time.perf_counter()
    run_ok(src, work, "job", "watch", *model_owner)
    watched = time.perf_counter()
    run_ok(src, work, "job", "download", *model_owner, "--out", "final.safetensors")
    downloaded = time.perf_counter()
    codes = [owner.wait(120) for owner in owners] + [node.popen.wait(120)]
    end = time.perf_counter()
    for log in logs.values():
        log.close()
    if any(codes):
        raise RuntimeError(f"exit statuses {codes} (owners, node): {[line for _, line in node.seen][-10:]}")
    closed = [node.first(f"round {r}/{ROUNDS} closed") for r in range(1, ROUNDS + 1)]
    intervals = [b - a for a, b in itertools.pairwise(closed)]
    return {
        "total": end - start,
        "node ready": ready - start,
        "submit": submitted - ready,
        "watch": watched - submitted,
        "download": downloaded - watched,
        "exit": end - downloaded,
        "round 1": closed[0] - submitted,
        "round": statistics.median(intervals),
        "idle RSS": idle_rss / 1024,
    }


def extract(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="c5a092a", help="git revision to compare with (before issue 14)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures"
        + " (this tree once, no baseline)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.repeats = 1
    with tempfile.TemporaryDirectory(prefix="bench-seed-job-") as tmp:
        root = Path(tmp)
        trees = {"this tree": REPO / "src"}
        if not args.smoke:  # the smoke run is this tree once, compared with itself
            trees = {f"baseline {args.baseline}": extract(args.baseline, root / "baseline"), **trees}
        works = {name: root / f"work-{index}" for index, name in enumerate(trees)}
        for name, src in trees.items():
            prepare(src, works[name])
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for repeat in range(args.repeats):
            for name, src in trees.items():
                runs[name].append(one_run(src, works[name]))
                print(
                    f"run {repeat + 1} {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in runs[name][-1].items()),
                    flush=True,
                )
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    (base_name, base), (this_name, this) = next(iter(medians.items())), list(medians.items())[-1]
    print(
        f"\n{'median of ' + str(args.repeats) + ' runs':<22}"
        + "".join(f"{name:>22}" for name in (base_name, this_name))
        + f"{'ratio':>8}"
    )
    units = {
        "total": "s",
        "node ready": "s",
        "submit": "s",
        "watch": "s",
        "download": "s",
        "exit": "s",
        "round 1": "s",
        "round": "ms",
        "idle RSS": "MiB",
    }
    for key, unit in units.items():
        scale = 1000 if unit == "ms" else 1
        print(
            f"{key + ' (' + unit + ')':<22}{base[key] * scale:>22.3f}{this[key] * scale:>22.3f}"
            f"{this[key] / base[key]:>8.2f}"
        )
    if args.smoke:
        print("smoke run: this tree once, compared with itself; no figure to quote")


if __name__ == "__main__":
    main()

"""Per-round cost of the node against the number of rounds already run: round 5,000 should cost what round 50 does.

    .venv/bin/python benchmarks/bench_many_rounds.py [--rounds 5000] [--window 50] [--baseline REV] [--smoke]

A tiny job (one float32 tensor of 4 values, two data owners, K = 2) runs through an AggregatorNode in this
process: its round loop, the sealed checkpoint store on disk (simulated TEE, fsyncs included), receipts signed,
two-phase release. The owners are the NodeService calls a transport makes (uploads; status and acknowledgements
through the in-memory transport, transport/inmemory.py, which waits for the node's changes as a transport does),
made from a driver thread (acknowledgements from two threads, at once), so their own cost is the same every round. A
round's cost is the interval between two consecutive releases (wall), the process CPU time spent in it (cpu),
and the CPU time of the node's round thread, which seals and checkpoints (loop).
Reported: medians over windows of `--window` rounds centred on rounds 50, 500, 2,500 and the last, and the
ratio last / 50, with the machine's load average.

The last `--pairs` rounds (100) are run interleaved round by round with the first rounds of a new job on a second
node in the same process: the same machine load hits both, so "rounds 4,921-5,000 against a new job's 21-100" is a
ratio against a baseline measured in the same run (`ratio old / new job`), which the windows above cannot be on
a machine whose load changes over minutes.

`--baseline REV` runs the same driver on `git archive REV src` in a child process after this tree's run (e.g. a
revision whose checkpoint rewrote every receipt each round), so both are measured on the same machine state; REV
must have transport/inmemory.py (issue 21's one node).
`--smoke` runs 60 rounds with windows of 10 and 20 interleaved (the suite runs it: tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(rounds: int, pairs: int, state: Path) -> dict[str, list[float]]:
    """Run the job on whichever enclavefl is importable; per-round figures (see the module's docstring)."""
    import numpy as np

    from enclavefl.core.acknowledgement import Acknowledgement
    from enclavefl.core.codec import encode_weights
    from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
    from enclavefl.core.messages import RoundPhase, RoundSummary
    from enclavefl.core.update_message import UpdateMessage
    from enclavefl.core.weights import ModelWeights
    from enclavefl.enclave.checkpoint import open_checkpoint_store
    from enclavefl.enclave.node import AggregatorNode
    from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
    from enclavefl.transport.inmemory import InMemoryClient

    warnings.simplefilter("ignore")  # the simulated enclave warns INSECURE on purpose
    owners = ("alice", "bob")
    initial = ModelWeights({"w": np.zeros(4, np.float32)})
    payloads = {n: encode_weights(ModelWeights({"w": np.full(4, i + 1, np.float32)})) for i, n in enumerate(owners)}
    tee = InsecureSimulationBackend(SimulatedPlatform.load_or_create(state / "platform"))
    signers = ThreadPoolExecutor(len(owners))

    class Run:
        """One node and its job; `play(r)` drives round r from its opening to its release."""

        def __init__(self, name: str, total: int) -> None:
            job = JobSpec(
                name=name,
                rounds=total,
                train=TrainConfig(local_steps=1),
                min_contributions=len(owners),
                round_deadline_seconds=600.0,
                data_owners=tuple(DataOwnerSpec(name=n) for n in owners),
                model_schema=initial.schema,
                initial_model_sha256=initial.sha256().hex(),
            )
            store = open_checkpoint_store(state / name, tee=tee, job_digest=job.digest())
            self.released: list[tuple[float, float, float]] = []
            self.node = AggregatorNode(job=job, tee=tee, initial_model=initial, checkpoints=store, on_round=self.mark)
            self.node.start()
            self.clients = {n: InMemoryClient(self.node, caller=n) for n in owners}
            self.status = self.node.node_status(data_owner=True)

        def mark(self, summary: RoundSummary) -> None:  # on the node's round thread: thread_time is its CPU
            self.released.append((time.perf_counter(), time.process_time(), time.thread_time()))

        def play(self, r: int) -> None:
            node, first = self.node, self.clients[owners[0]]
            while not (self.status.phase is RoundPhase.OPEN and self.status.round == r):
                self.status = first.node_status(seen=self.status, wait_seconds=5.0)
            for name in owners:
                message = UpdateMessage.of(owner=name, round=r, num_examples=1, payload=payloads[name])
                node.submit_update(message.incoming())
            while self.status.phase is not RoundPhase.SIGNING or self.status.pending is None:
                self.status = first.node_status(seen=self.status, wait_seconds=5.0)
            receipt = self.status.pending
            # keyless owners in process (no signature); at once, as owners do: an acknowledgement waits for the release
            acks = [Acknowledgement(owner=n, round=r, receipt_sha256=receipt.sha256, signature=b"") for n in owners]
            answers = list(signers.map(lambda ack: self.clients[ack.owner].acknowledge_for_status(ack), acks))
            self.status = answers[-1] or node.node_status(data_owner=True)

        def finish(self, total: int) -> None:
            final = self.node.wait(timeout=60.0)
            self.node.stop()
            if final.rounds_completed != total or len(self.released) != total:
                raise SystemExit(f"the job did not finish: {final.job_state.value}, {final.job_message}")

    old = Run("many-rounds", rounds)
    for r in range(1, rounds - pairs + 1):
        old.play(r)
    alone = list(old.released)
    young = Run("few-rounds", pairs)
    young_wall, old_wall = [], []
    for i in range(1, pairs + 1):  # interleaved: round i of a new job, round rounds - pairs + i of the old one
        for run, r, into in ((young, i, young_wall), (old, rounds - pairs + i, old_wall)):
            began = time.perf_counter()
            run.play(r)
            into.append(time.perf_counter() - began)
    old.finish(rounds)
    young.finish(pairs)
    signers.shutdown()
    return {  # index i: round i + 2 (intervals between releases)
        "wall": [b[0] - a[0] for a, b in itertools.pairwise(alone)],
        "cpu": [b[1] - a[1] for a, b in itertools.pairwise(alone)],
        "loop": [b[2] - a[2] for a, b in itertools.pairwise(alone)],
        "paired_young_wall": young_wall,
        "paired_old_wall": old_wall,
        "paired_young_loop": [b[2] - a[2] for a, b in itertools.pairwise(young.released)],
        "paired_old_loop": [b[2] - a[2] for a, b in itertools.pairwise(old.released[-pairs - 1 :])],
    }


def windows(rounds: int, width: int) -> list[int]:
    """The rounds the windows centre on: 50, 500, 2,500 and the last (those that fit)."""
    centres = [c for c in (50, 500, 2500) if c + width // 2 < rounds - width]
    return [*(centres or [max(width // 2 + 2, 2)]), rounds - width // 2]


def median_at(series: list[float], centre: int, width: int) -> float:
    first = max(centre - width // 2, 2)  # intervals start at round 2
    return statistics.median(series[first - 2 : first - 2 + width])


def run_tree(src: Path, rounds: int, pairs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-many-rounds-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(src)}
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--rounds", str(rounds), "--pairs", str(pairs), "--state", tmp],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"child on {src} failed:\n{out.stderr[-3000:]}")
        result: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def report_paired(name: str, series: dict[str, list[float]], rounds: int, pairs: int) -> None:
    skip = pairs // 5  # a new node's first rounds are not its steady state
    for kind in ("wall", "loop"):
        young = statistics.median(series[f"paired_young_{kind}"][skip:]) * 1e3
        old = statistics.median(series[f"paired_old_{kind}"][skip:]) * 1e3
        print(
            f"{name:10} {kind:4} rounds {skip + 1}-{pairs} {young:9.3f}   rounds {rounds - pairs + skip + 1}-{rounds} "
            f"{old:9.3f}   ratio old / new job (interleaved): {old / young:.2f}"
        )


def report(name: str, series: dict[str, list[float]], centres: list[int], width: int) -> None:
    for kind in ("wall", "cpu", "loop"):
        cells = [median_at(series[kind], c, width) * 1e3 for c in centres]
        ratio = cells[-1] / cells[0]
        print(
            f"{name:10} {kind:4} "
            + " ".join(f"{c:9.3f}" for c in cells)
            + f"   ratio round {centres[-1]} / {centres[0]}: {ratio:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--window", type=int, default=50, help="rounds per window (medians)")
    parser.add_argument("--baseline", help="a git revision to run the same way after this tree")
    parser.add_argument("--pairs", type=int, default=100, help="last rounds run interleaved with a new job's")
    parser.add_argument("--smoke", action="store_true", help="60 rounds, windows of 10, 20 interleaved")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds, args.pairs, args.state)))
        return
    if args.smoke:
        args.rounds, args.window, args.pairs = 60, 10, 20
    centres = windows(args.rounds - args.pairs, args.window)
    load_before = os.getloadavg()
    trees = [("this tree", REPO / "src")]
    with tempfile.TemporaryDirectory(prefix="bench-many-rounds-src-") as tmp:
        if args.baseline:
            trees.append((args.baseline, extract(args.baseline, Path(tmp))))
        results = [(name, run_tree(src, args.rounds, args.pairs)) for name, src in trees]
    load_after = os.getloadavg()
    print(f"{args.rounds} rounds of a 4-value model, 2 owners, sealed checkpoints on disk")
    print(f"medians of {args.window} rounds per window, milliseconds")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'tree':10} {'':4} " + " ".join(f"{'r' + str(c):>9}" for c in centres))
    for name, series in results:
        report(name, series, centres, args.window)
    print(f"the last {args.pairs} rounds, interleaved round by round with a new job's first {args.pairs} (same load):")
    for name, series in results:
        report_paired(name, series, args.rounds, args.pairs)


if __name__ == "__main__":
    main()

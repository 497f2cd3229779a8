"""Per-round cost of the node against the number of rounds already run: round 5,000 should cost what round 50 does.

    .venv/bin/python benchmarks/bench_many_rounds.py [--rounds 5000] [--window 50] [--baseline REV] [--smoke]

A tiny job (one float32 tensor of 4 values, two data owners, K = 2) runs through an AggregatorNode in this
process: its round loop, the sealed checkpoint store on disk (simulated TEE, fsyncs included), receipts signed,
two-phase release. The owners are the NodeService calls a transport makes (upload, status, acknowledge), made
from a driver thread (acknowledgements from two threads, at once), so their own cost is the same every round. A
round's cost is the interval between two consecutive releases (wall) and the process CPU time spent in it.
Reported: medians over windows of `--window` rounds centred on rounds 50, 500, 2,500 and the last, and the
ratio last / 50, with the machine's load average.

`--baseline REV` runs the same driver on `git archive REV src` in a child process after this tree's run (e.g. a
revision whose checkpoint rewrote every receipt each round), so both are measured on the same machine state.
`--smoke` runs 60 rounds with windows of 10 (the suite runs it: tests/benchmarks/test_smoke.py).
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


def child(rounds: int, state: Path) -> dict[str, list[float]]:
    """Run `rounds` rounds on whichever enclavefl is importable; the per-round wall and CPU intervals."""
    import numpy as np

    from enclavefl.core.acknowledgement import Acknowledgement
    from enclavefl.core.codec import encode_weights
    from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
    from enclavefl.core.messages import RoundPhase, RoundSummary
    from enclavefl.core.update import UpdateMessage
    from enclavefl.core.weights import ModelWeights
    from enclavefl.enclave.checkpoint import open_checkpoint_store
    from enclavefl.enclave.node import AggregatorNode
    from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform

    warnings.simplefilter("ignore")  # the simulated enclave warns INSECURE on purpose
    owners = ("alice", "bob")
    initial = ModelWeights({"w": np.zeros(4, np.float32)})
    job = JobSpec(
        name="many-rounds",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        min_contributions=len(owners),
        round_deadline_seconds=600.0,
        data_owners=tuple(DataOwnerSpec(name=n) for n in owners),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    tee = InsecureSimulationBackend(SimulatedPlatform.load_or_create(state / "platform"))
    store = open_checkpoint_store(state / "node", tee=tee, job_digest=job.digest())
    released: list[tuple[float, float]] = []

    def on_round(summary: RoundSummary) -> None:
        released.append((time.perf_counter(), time.process_time()))

    node = AggregatorNode(job=job, tee=tee, initial_model=initial, checkpoints=store, on_round=on_round)
    node.start()
    payloads = {n: encode_weights(ModelWeights({"w": np.full(4, i + 1, np.float32)})) for i, n in enumerate(owners)}
    status = node.node_status(data_owner=True)
    signers = ThreadPoolExecutor(len(owners))
    for r in range(1, rounds + 1):
        while not (status.phase is RoundPhase.OPEN and status.round == r):
            status = node.node_status_after(status, timeout=5.0, caller=owners[0])
        for name in owners:
            message = UpdateMessage.of(owner=name, round=r, num_examples=1, payload=payloads[name])
            node.submit_update(message.incoming())
        while status.phase is not RoundPhase.SIGNING or status.pending is None:
            status = node.node_status_after(status, timeout=5.0, caller=owners[0])
        receipt = status.pending
        # keyless owners in process (no signature); at once, as owners do: an acknowledgement waits for the release
        acks = [Acknowledgement(owner=n, round=r, receipt_sha256=receipt.sha256, signature=b"") for n in owners]
        status = list(signers.map(node.acknowledge, acks))[-1]
    final = node.wait(timeout=60.0)
    node.stop()
    signers.shutdown()
    if final.rounds_completed != rounds or len(released) != rounds:
        raise SystemExit(f"the job did not finish: {final.job_state.value}, {final.job_message}")
    wall = [b[0] - a[0] for a, b in itertools.pairwise(released)]
    cpu = [b[1] - a[1] for a, b in itertools.pairwise(released)]
    return {"wall": wall, "cpu": cpu}  # index i: round i + 2


def windows(rounds: int, width: int) -> list[int]:
    """The rounds the windows centre on: 50, 500, 2,500 and the last (those that fit)."""
    centres = [c for c in (50, 500, 2500) if c + width // 2 < rounds - width]
    return [*(centres or [max(width // 2 + 2, 2)]), rounds - width // 2]


def median_at(series: list[float], centre: int, width: int) -> float:
    first = max(centre - width // 2, 2)  # intervals start at round 2
    return statistics.median(series[first - 2 : first - 2 + width])


def run_tree(src: Path, rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-many-rounds-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(src)}
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--rounds", str(rounds), "--state", tmp],
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


def report(name: str, series: dict[str, list[float]], centres: list[int], width: int) -> None:
    for kind in ("wall", "cpu"):
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
    parser.add_argument("--smoke", action="store_true", help="60 rounds, windows of 10")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds, args.state)))
        return
    if args.smoke:
        args.rounds, args.window = 60, 10
    centres = windows(args.rounds, args.window)
    load_before = os.getloadavg()
    trees = [("this tree", REPO / "src")]
    with tempfile.TemporaryDirectory(prefix="bench-many-rounds-src-") as tmp:
        if args.baseline:
            trees.append((args.baseline, extract(args.baseline, Path(tmp))))
        results = [(name, run_tree(src, args.rounds)) for name, src in trees]
    load_after = os.getloadavg()
    print(f"{args.rounds} rounds of a 4-value model, 2 owners, sealed checkpoints on disk")
    print(f"medians of {args.window} rounds per window, milliseconds")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'tree':10} {'':4} " + " ".join(f"{'r' + str(c):>9}" for c in centres))
    for name, series in results:
        report(name, series, centres, args.window)


if __name__ == "__main__":
    main()

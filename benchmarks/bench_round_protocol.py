"""Round time of the two-phase round close (issue 10 §1) against the one-phase protocol it replaced, same run.

A job runs over real gRPC/TLS on loopback: an AggregatorNode with its sealed checkpoint store (simulated TEE)
and two data owners (threads, the real `run_data_owner` loop with a persistent owner state, torch training).
The round time is the median interval between two consecutive releases at the node. The baseline is the code of
a git revision before the change (`--baseline`, extracted with `git archive`) running the same script in the
same way; runs alternate between the two so machine load hits both alike. Reported: medians and their ratio.

    .venv/bin/python benchmarks/bench_round_protocol.py [--baseline 6b5e872] [--model seed|big] [--rounds 30]
        [--repeats 3] [--poll 0.01] [--smoke]

`seed` is the seed job (nn.Linear(2, 1), two owners, 5 local steps); `big` is nn.Linear(1024, 1024) (1M
parameters, 4 MiB updates), same owners. `--poll` is the owners' status poll interval in a baseline from before
issue 14; since then owners long-poll the node's status and the option has no effect on this tree. To compare
the long poll with the polling it replaced: `--baseline c5a092a --poll 0.1` (0.1 s was the default).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    """One run of one protocol (whichever enclavefl is on PYTHONPATH); prints the release intervals as JSON."""
    import torch

    from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
    from enclavefl.core.torch_adapter import weights_from_module
    from enclavefl.enclave.checkpoint import open_checkpoint_store
    from enclavefl.enclave.node import AggregatorNode
    from enclavefl.owner.data_owner import DataOwner
    from enclavefl.owner.owner_state import PersistentReceiptTracker
    from enclavefl.task import TensorData, TorchTask
    from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
    from enclavefl.tee.verify.policy import AttestationPolicy
    from enclavefl.transport.owner_tls import OwnerCredentials

    try:  # the owner's modules since issue 21
        from enclavefl.owner.attested import connect_data_owner
        from enclavefl.owner.chain_view import ReceiptChainView as chain_view
        from enclavefl.owner.data_owner_loop import run_data_owner
    except ImportError:  # a baseline from before: one module for both parties
        from enclavefl.owner.remote import connect_data_owner, run_data_owner  # type: ignore[no-redef]

        chain_view = None  # type: ignore[assignment,misc]

    torch.set_num_threads(1)
    width = 2 if args.model == "seed" else 1024
    outputs = 1 if args.model == "seed" else 1024

    def make_model() -> torch.nn.Module:
        return torch.nn.Linear(width, outputs)

    def sse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((prediction - target) ** 2).sum()

    task = TorchTask(model_factory=make_model, loss_fn=sse)
    generator = torch.Generator().manual_seed(0)
    data = {
        name: TensorData(x=torch.rand(2, width, generator=generator), y=torch.rand(2, outputs, generator=generator))
        for name in ("bob", "alice")
    }
    torch.manual_seed(0)
    initial = weights_from_module(make_model())
    work = Path(args.work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        platform = SimulatedPlatform.load_or_create(work / "platform")
        tee = InsecureSimulationBackend(platform)
        policy = AttestationPolicy.strict().allow_mrsigner(platform.mrsigner).allow_simulation(platform.root_ca_der)
    credentials = {name: OwnerCredentials.generate(name) for name in data}
    job = JobSpec(
        name="bench-rounds",
        rounds=args.rounds,
        train=TrainConfig(local_steps=5, lr=0.1 if args.model == "seed" else 1e-4),  # big: small steps, no overflow
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=2,
        round_deadline_seconds=60.0,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        data_owners=tuple(
            DataOwnerSpec(name=n, certificate_pem=c.certificate_pem.decode()) for n, c in credentials.items()
        ),
    )
    released: list[float] = []
    store = open_checkpoint_store(work / "node-state", tee=tee, job_digest=job.digest())
    node = AggregatorNode(
        job=job,
        tee=tee,
        initial_model=initial,
        checkpoints=store,
        on_round=lambda _: released.append(time.perf_counter()),
    )
    if hasattr(node, "serve_grpc"):  # since issue 21 a node serves gRPC when asked; before, it always did
        node.serve_grpc()
    node.start()

    def owner(name: str) -> None:
        attested = connect_data_owner(node.address, name=name, job=job, policy=policy, credentials=credentials[name])
        tracker = PersistentReceiptTracker.open(work / f"{name}-state", job_digest=job.digest())
        if chain_view is not None:  # since issue 21 the owner keeps its chain in a view and acts through `use`
            view = chain_view(job_digest=job.digest(), tracker=tracker)
            data_owner = DataOwner(name=name, task=task, data=data[name], job=job, chain=view)
            run_data_owner(data_owner, attested)
            return
        data_owner = DataOwner(name=name, task=task, data=data[name], node=attested.client, job=job, policy=policy)
        # Before issue 14 owners polled every `poll_seconds`; since, they long-poll the node (no interval).
        polls = "poll_seconds" in inspect.signature(run_data_owner).parameters
        waiting = {"poll_seconds": args.poll} if polls else {}
        run_data_owner(data_owner, attested, tracker=tracker, **waiting)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = [threading.Thread(target=owner, args=(n,), daemon=True) for n in data]
        for t in threads:
            t.start()
        status = node.wait(timeout=600)
        for t in threads:
            t.join(60)
    node.stop(0)
    assert status.job_state.value == "finished", status
    intervals = [b - a for a, b in itertools.pairwise(released)]
    print(json.dumps({"intervals": intervals}))


def extract(revision: str, into: Path) -> Path:
    """The `src` tree of `revision`, extracted from git (the code before the change)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "src"], check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_one(src: Path, args: argparse.Namespace, work: Path) -> list[float]:
    work.mkdir(parents=True)
    command = [
        sys.executable,
        __file__,
        "--child",
        "--work",
        str(work),
        "--model",
        args.model,
        "--rounds",
        str(args.rounds),
        "--poll",
        str(args.poll),
    ]
    out = subprocess.run(
        command, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)}
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1])["intervals"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="6b5e872", help="git revision with the one-phase protocol")
    parser.add_argument("--model", choices=("seed", "big"), default="seed")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.01, help="owners' status poll interval, seconds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures"
        + " (the baseline is this tree)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.repeats = 3, 1
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        root = Path(tmp)
        baseline = REPO / "src" if args.smoke else extract(args.baseline, root / "baseline")
        sources = {"one-phase (baseline)": baseline, "two-phase": REPO / "src"}
        samples: dict[str, list[float]] = {name: [] for name in sources}
        for repeat in range(args.repeats):  # alternate, so load on the shared machine hits both
            for index, (name, src) in enumerate(sources.items()):
                samples[name] += run_one(src, args, root / f"run-{repeat}-{index}")
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:22s} median round {value * 1e3:8.2f} ms  ({len(samples[name])} rounds)")
    print(
        f"ratio two-phase / one-phase: {medians['two-phase'] / medians['one-phase (baseline)']:.2f}x "
        f"({args.model} job, owners poll every {args.poll * 1e3:g} ms)"
    )
    if args.smoke:
        print("smoke run: both rows are this tree, at a tiny size; no figure to quote")


if __name__ == "__main__":
    main()

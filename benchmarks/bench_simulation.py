"""Many virtual owners on Ray: enclavefl's simulate(backend="ray") beside Flower 1.42's Ray simulation.

    .venv/bin/python benchmarks/bench_simulation.py                      # 1,000 owners, 20 per round, 50 rounds
    .venv/bin/python benchmarks/bench_simulation.py --owners 200 --rounds 10   # quicker
    .venv/bin/python benchmarks/bench_simulation.py --smoke              # tiny, enclavefl's side only (no Flower)

The same workload on both sides (benchmarks/simulation/workload.py: an MLP 60 -> 32 -> 10, synthetic non-IID data
built from each owner's index where it trains, 10 SGD steps of 10 examples per round, FedAvg weighted by examples,
the same initial weights): enclavefl runs it through its simulated enclave node (attestation, cohorts drawn in the
enclave, receipts signed by every contributor); Flower through its ServerApp/ClientApp on its Ray backend, with
FedAvg sampling the same number of owners per round. Flower is installed by this script into its own virtualenv
(.venv-flower-sim: flwr[simulation]==1.42.*, torch 2.13.0, psutil), never into the project's.

Reported per side: median wall time per round (between consecutive round releases / server evaluations, from
round 2 on: round 1 includes starting the Ray workers and, on Flower's side, its round-0 evaluation), the
whole run's wall time, the driver's peak RSS and the peak summed RSS of its Ray worker processes, and the final
model's cross-entropy on a pooled held-out set. Both use 2 CPUs for training (one per owner task). Budget: enclavefl
<= 0.5x Flower's wall time per round at equal final loss.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "simulation"))

import torch  # noqa: E402
from workload import BATCH, LOCAL_STEPS, LR, MemorySampler, loss_fn, make_model, median, owner_data, test_loss  # noqa: E402

import enclavefl  # noqa: E402
from enclavefl import OwnerPartition, TensorData, TorchTask, TrainConfig  # noqa: E402

FLOWER_VENV = HERE.parent / ".venv-flower-sim"  # beside the project's .venv (git ignores both)
# On a loaded machine Ray's raylet can take longer than its default wait to come up: both sides get the same margin.
RAY_ENV = {"RAY_raylet_start_wait_time_s": "300"}
FLOWER_REQUIREMENT = "flwr[simulation]==1.42.*"


def owner_tensors(index: int) -> TensorData:
    x, y = owner_data(index)
    return TensorData(x=x, y=y)


TASK = TorchTask(model_factory=make_model, loss_fn=loss_fn)


def run_enclavefl(owners: int, per_round: int, rounds: int, cpus: int) -> dict[str, Any]:
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "simulation"), str(HERE), os.environ.get("PYTHONPATH", "")])
    os.environ.update(RAY_ENV)
    stamps: list[float] = []
    started = time.monotonic()
    with MemorySampler() as memory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        try:
            stamps.append(time.monotonic())  # the first interval (setup and round 1) is dropped below
            history = enclavefl.simulate(
                TASK,
                OwnerPartition(count=owners, data=owner_tensors),
                rounds=rounds,
                train=TrainConfig(local_steps=LOCAL_STEPS, batch_size=BATCH, lr=LR),
                clients_per_round=per_round,
                backend="ray",
                on_round=lambda summary: stamps.append(time.monotonic()),
                on_progress=lambda p: (
                    print(f"  enclavefl round {p.round}: {p.trained} owners, {p.seconds:.2f} s", flush=True)
                    if p.round % 10 == 0 or p.round == 1
                    else None
                ),
            )
        finally:
            ray.shutdown()
    wall = time.monotonic() - started
    model = history.load_model(TASK)
    return {
        "round_seconds": [b - a for a, b in itertools.pairwise(stamps)][1:],  # round 1 starts the workers: left out
        "wall_seconds": wall,
        "final_loss": test_loss(model),
        "driver_mib": memory.peaks.driver_mib,
        "workers_mib": memory.peaks.workers_mib,
    }


def flower_python() -> Path:
    """The Flower virtualenv's Python, created and filled on first use (torch pinned: the CPU wheel)."""
    python = FLOWER_VENV / "bin" / "python"
    if not (FLOWER_VENV / ".installed").exists():
        print(f"installing {FLOWER_REQUIREMENT} into {FLOWER_VENV} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, FLOWER_REQUIREMENT, "psutil", "torch==2.13.0"], check=True)
        (FLOWER_VENV / ".installed").touch()
    return python


def run_flower(owners: int, per_round: int, rounds: int, cpus: int) -> dict[str, Any]:
    python = flower_python()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flower.json"
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **RAY_ENV}
        subprocess.run(
            [
                str(python),
                str(HERE / "simulation" / "flower_side.py"),
                "--owners",
                str(owners),
                "--per-round",
                str(per_round),
                "--rounds",
                str(rounds),
                "--cpus",
                str(cpus),
                "--out",
                str(out),
            ],
            check=True,
            env=env,
        )
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def row(name: str, r: dict[str, Any]) -> str:
    per_round = median(r["round_seconds"]) if r["round_seconds"] else float("nan")
    return (
        f"| {name} | {per_round:.3f} | {r['wall_seconds']:.1f} | {r['driver_mib']:.0f} | {r['workers_mib']:.0f} | "
        f"{r['final_loss']:.4f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=1000, help="virtual owners")
    parser.add_argument("--per-round", type=int, default=20, help="owners per round (the cohort)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to each side's Ray")
    parser.add_argument("--smoke", action="store_true", help="tiny run of enclavefl's side only (no Flower)")
    parser.add_argument("--json", type=Path, help="also write both sides' figures here")
    args = parser.parse_args()
    if args.smoke:
        if importlib.util.find_spec("ray") is None:
            print("smoke run skipped: needs ray (pip install 'enclavefl[ray]')")
            return
        args.owners, args.per_round, args.rounds = 12, 3, 3
    torch.set_num_threads(1)
    print(f"workload: {args.owners} owners, {args.per_round} per round, {args.rounds} rounds; load {os.getloadavg()}")
    results = {"enclavefl": run_enclavefl(args.owners, args.per_round, args.rounds, args.cpus)}
    if not args.smoke:
        try:
            results["flower"] = run_flower(args.owners, args.per_round, args.rounds, args.cpus)
        except subprocess.CalledProcessError as exc:  # e.g. its Ray did not come up: enclavefl's row still prints
            print(f"Flower's run failed ({exc}); enclavefl's figures only")
    print(
        "| simulator | wall per round, median (s) | whole run (s) | driver peak RSS (MiB) | Ray workers peak RSS (MiB) "
        "| final held-out loss |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(row(name, r))
    if "flower" in results:
        ratio = median(results["enclavefl"]["round_seconds"]) / median(results["flower"]["round_seconds"])
        print(f"ratio enclavefl / Flower, wall per round: {ratio:.2f} (budget <= 0.5)")
        losses = results["enclavefl"]["final_loss"], results["flower"]["final_loss"]
        print(f"final loss: enclavefl {losses[0]:.4f}, Flower {losses[1]:.4f}")
    print(f"load after: {os.getloadavg()}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""A data owner's round-1 training time against its later rounds, with and without the warm-up, same run.

    python benchmarks/bench_first_round.py [--repeats 5] [--rounds 5] [--smoke]

Each sample is a fresh process, as a data owner starts: import torch, build the seed task (nn.Linear(2, 1), SGD,
5 local steps), then (`warm`) run task/api.py warm_up as data_owner_main does before joining, or (`cold`) not,
and time TorchTask.train for rounds 1..R on the owner's model. Reported: medians of round 1 and of rounds 2..R,
and their ratio; cold and warm processes alternate so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child(mode: str, rounds: int) -> None:
    import torch

    from enclavefl.core.job import TrainConfig
    from enclavefl.task import TensorData, TorchTask
    from enclavefl.task.api import warm_up

    task = TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=lambda p, t: ((p - t) ** 2).sum())
    data = TensorData(x=torch.tensor([[0.0, 0.0], [0.0, 1.0]]), y=torch.tensor([[0.0], [0.0]]))
    config = TrainConfig(local_steps=5, lr=0.1)
    if mode == "warm":
        warm_up(task, data, config)
    model = task.create_model()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        task.train(model, data, config, global_model=None)
        times.append(time.perf_counter() - start)
    print(json.dumps(times))


def sample(mode: str, rounds: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--rounds", str(rounds)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=("cold", "warm"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.rounds = 1, 2
    if args.child:
        child(args.child, args.rounds)
        return
    first: dict[str, list[float]] = {"cold": [], "warm": []}
    later: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(args.repeats):
        for mode in first:
            times = sample(mode, args.rounds)
            first[mode].append(times[0])
            later[mode] += times[1:]
    print(f"{'':<34}{'round 1 (ms)':>14}{'rounds 2+ (ms)':>16}{'round 1 / 2+':>14}")
    for mode, label in (("cold", "no warm-up (before)"), ("warm", "warm-up before joining (after)")):
        one, rest = statistics.median(first[mode]) * 1e3, statistics.median(later[mode]) * 1e3
        print(f"{label:<34}{one:>14.2f}{rest:>16.3f}{one / rest:>14.1f}")


if __name__ == "__main__":
    main()

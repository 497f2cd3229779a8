"""Local solver speed for the FedProx experiment: SoftmaxRegression (numpy) against TorchTask (autograd).

Both train the paper's logistic regression on one Synthetic(1, 1) device for the same epochs, batches of 10,
lr 0.01, with and without FedProx's proximal term; they take the same steps (tests/demos/test_fedprox.py checks
it). Interleaved repeats (one call of each per repeat, so a neighbour's load hits both alike), medians, reported
as TorchTask's time over SoftmaxRegression's: a ratio, not a time. The full experiment
(examples/fedprox/run.py) is tens of thousands of steps per round for 5 x 200 rounds, which is why it uses the
numpy solver.

Run: .venv/bin/python benchmarks/bench_fedprox_solver.py [--repeats 7] [--epochs 5] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from enclavefl import TorchTask, TrainConfig
from enclavefl.core.torch_adapter import load_weights_into
from enclavefl.demos.fedprox import initial_weights
from enclavefl.demos.fedprox_data import synthetic_federation
from enclavefl.demos.fedprox_task import logistic_regression, softmax_regression_task


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="the suite's run: one repeat of one epoch")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.epochs = 1, 1
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead, and the machine is shared
    fed = synthetic_federation(alpha=1.0, beta=1.0, seed=0)
    data = max(fed.devices.values(), key=lambda d: len(d.train)).train
    start = initial_weights(seed=0)
    reference = TorchTask(model_factory=logistic_regression, loss_fn=nn.functional.cross_entropy)
    fast = softmax_regression_task()
    results: dict[str, object] = {"examples": len(data), "epochs": args.epochs, "batch_size": 10}
    for mu in (0.0, 1.0):
        config = TrainConfig(local_epochs=args.epochs, batch_size=10, lr=0.01, proximal_mu=mu, seed=1)

        def run_torch(config: TrainConfig = config) -> None:
            model, anchor = logistic_regression(), logistic_regression()
            load_weights_into(model, start)
            load_weights_into(anchor, start)
            reference.train(model, data, config, global_model=anchor if config.proximal_mu else None)

        def run_numpy(config: TrainConfig = config) -> None:
            model = fast.create_model()
            load_weights_into(model, start)
            fast.train(model, data, config, global_model=None)

        run_torch(), run_numpy()  # warm up (torch's first optimizer imports a lot)
        torch_times, numpy_times = [], []
        for _ in range(args.repeats):
            torch_times.append(timed(run_torch))
            numpy_times.append(timed(run_numpy))
        steps = args.epochs * -(-len(data) // 10)
        results[f"mu={mu:g}"] = {
            "torchtask_over_numpy": round(statistics.median(torch_times) / statistics.median(numpy_times), 2),
            "min_ratio": round(min(t / n for t, n in zip(torch_times, numpy_times, strict=True)), 2),
            "max_ratio": round(max(t / n for t, n in zip(torch_times, numpy_times, strict=True)), 2),
            "steps": steps,
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

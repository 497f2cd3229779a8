"""The Flower client of client.py, unchanged, trained by enclavefl: two hospitals, a simulated secure worker.

    python examples/flower/run.py

`FlowerClientTask` maps Flower's ordered parameter list ([coef, intercept]) onto the job's named tensors; a client
returning another number of arrays, or another shape, is refused with a ModelSchemaMismatch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import DigitsClient

import enclavefl

PARAMETER_NAMES = ["coef", "intercept"]  # position i of Flower's list is the job's tensor i


def split_digits() -> dict[str, tuple[np.ndarray, ...]]:
    """Each owner's (x_train, y_train, x_test, y_test): the digits split in two, 80/20 within each half."""
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    halves = {"bob": slice(0, len(x) // 2), "alice": slice(len(x) // 2, len(x))}
    owners = {}
    for name, part in halves.items():
        xs, ys = x[part], y[part]
        cut = int(len(xs) * 0.8)
        owners[name] = (xs[:cut], ys[:cut], xs[cut:], ys[cut:])
    return owners


def client_fn(data: Any) -> DigitsClient:
    return DigitsClient(*data)


def main(rounds: int = 5) -> dict[str, float]:
    owners = split_digits()
    task = enclavefl.FlowerClientTask(client_fn, PARAMETER_NAMES, initial_data=owners["bob"])
    history = enclavefl.simulate(
        task, owners, rounds=rounds, train=enclavefl.TrainConfig(local_epochs=10, lr=0.1), min_contributions=2
    )
    for summary in history.rounds:
        print(f"round {summary.round}: {summary.contributions} contributions")
    model = history.load_model(task)
    result = {name: task.evaluate(model, data) for name, data in owners.items()}
    for name, evaluation in result.items():
        print(f"{name}'s test split: loss {evaluation.loss:.4f}, accuracy {evaluation.metrics['accuracy']:.3f}")
    return {name: evaluation.metrics["accuracy"] for name, evaluation in result.items()}


if __name__ == "__main__":
    main()

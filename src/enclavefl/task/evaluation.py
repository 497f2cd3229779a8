"""The model owner's own evaluation of each released model, from a task and a held-out data set.

    evaluate = central_evaluation(task, test_data)          # Flower's evaluate_fn: (round, weights) -> metrics
    evaluate(3, weights)                                    # {"loss": 0.21, "accuracy": 0.93}

`enclavefl job watch --evaluate task.py:TASK --eval-data test.safetensors` and `simulate(evaluate=...)` run it
on every released model; the numbers are the model owner's alone and never leave its machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from enclavefl.core.torch_adapter import load_weights_into
from enclavefl.core.weights import ModelWeights
from enclavefl.task.api import Task

CentralEvaluation = Callable[[int, ModelWeights], dict[str, float]]


def central_evaluation(task: Task, data: Any) -> CentralEvaluation:
    """`task.evaluate` of each released model on `data`: its loss and every metric the task reports."""

    def evaluate(round_index: int, weights: ModelWeights) -> dict[str, float]:
        del round_index  # every round is evaluated the same way
        model = task.create_model()
        load_weights_into(model, weights)
        with torch.no_grad():
            result = task.evaluate(model, data)
        return {"loss": float(result.loss), **{k: float(v) for k, v in result.metrics.items()}}

    return evaluate

"""The data owners' training task: PySyft's toy regression, nn.Linear(2, 1) trained with SGD on squared error.

Data owners load it with `--task task.py:TASK`. The task runs on the data owner's machine only: the node never
imports it (it has no torch), it receives trained weights.
"""

from __future__ import annotations

import torch

from enclavefl.task import TorchTask


def model() -> torch.nn.Module:
    return torch.nn.Linear(2, 1)


def sum_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).sum()


TASK = TorchTask(model_factory=model, loss_fn=sum_squared_error)

"""A tiny data-owner task for many-process tests: nn.Linear(2, 1) and plain gradient descent without torch.optim.

torch.optim's first `step()` imports torch._dynamo (about a second of CPU per process); with twenty owner
processes on two cores that would dominate the test, so this task updates the parameters by hand.
"""

from __future__ import annotations

import torch

from enclavefl.core.job import TrainConfig
from enclavefl.task import EvalResult, TensorData, TrainResult


class TinyTask:
    def create_model(self) -> torch.nn.Module:
        return torch.nn.Linear(2, 1)

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        losses = []
        for _ in range(config.local_steps or 1):
            model.zero_grad()
            loss = ((model(data.x) - data.y) ** 2).sum()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    assert p.grad is not None
                    p.sub_(config.lr * p.grad)
            losses.append(float(loss.detach()))
        return TrainResult(num_examples=len(data), losses=tuple(losses))

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, data: TensorData) -> EvalResult:
        loss = float(((model(data.x) - data.y) ** 2).sum())
        return EvalResult(num_examples=len(data), loss=loss, metrics={})


TASK = TinyTask()

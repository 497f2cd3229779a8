"""A tiny data-owner task for many-process tests: nn.Linear(2, 1) and plain gradient descent without torch.optim.

torch.optim's first `step()` imports torch._dynamo (about a second of CPU per process); with twenty owner
processes on two cores that would dominate the test, so this task updates the parameters by hand.
"""

from __future__ import annotations

import time

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


class TinyTaskThatStallsAfterRoundOne(TinyTask):
    """TinyTask, but every round after its first trains for STALL_SECONDS: an owner still training round 2 when
    it is killed, so it can never have contributed to (and thus never be needed to sign) round 2."""

    STALL_SECONDS = 20.0

    def __init__(self) -> None:
        self.rounds_trained = 0

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        self.rounds_trained += 1
        if self.rounds_trained > 1:
            time.sleep(self.STALL_SECONDS)
        return super().train(model, data, config, global_model=global_model)


TASK = TinyTask()
STALLING_TASK = TinyTaskThatStallsAfterRoundOne()

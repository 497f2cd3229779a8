"""The task API: what a user writes once, for simulation and deployment alike.

A task knows how to build the model, train it locally for one round and evaluate it. Data never leaves the
data owner: the task receives the owner's `TensorData` and returns only weights and aggregate numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from enclavefl.core.job import TrainConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorData:
    """A data owner's examples: inputs and targets with the same first dimension."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} examples but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainResult:
    num_examples: int
    losses: tuple[float, ...]  # one per optimizer step, seen only by the data owner


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    num_examples: int
    loss: float
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    def create_model(self) -> torch.nn.Module:
        """A freshly initialised model (deterministic under torch.manual_seed)."""
        ...

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        """Train `model` in place for one round; `model` holds the round's global weights when it is called.

        `global_model` is a second copy of them, FedProx's anchor: passed only when `config.proximal_mu > 0`,
        else None (no second model is built)."""
        ...

    def evaluate(self, model: torch.nn.Module, data: TensorData) -> EvalResult:
        """Loss and metrics of `model` on `data`, without changing the model."""
        ...


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchTask:
    """A task from three parts: a model factory, a loss and optional metrics.

    Training runs `config.local_steps` optimizer steps (or `local_epochs` passes) over the owner's data in
    mini-batches of `config.batch_size` (full batch when None), shuffled by a generator seeded from
    `config.seed` and the round, with an optional FedProx proximal term mu/2 * ||w - w_global||^2.
    """

    model_factory: Callable[[], torch.nn.Module]
    loss_fn: LossFn
    metrics: Mapping[str, MetricFn] = field(default_factory=dict)

    def create_model(self) -> torch.nn.Module:
        return self.model_factory()

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        model.train()
        optimizer = make_optimizer(model, config)
        anchors = (
            [p.detach().clone() for p in global_model.parameters()]
            if global_model is not None and config.proximal_mu > 0
            else None
        )
        generator = torch.Generator().manual_seed(config.seed)
        losses: list[float] = []
        for batch_x, batch_y in iterate_batches(data, config, generator):
            optimizer.zero_grad()
            loss = self.loss_fn(model(batch_x), batch_y)
            if anchors is not None:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchors, strict=True))
                loss = loss + 0.5 * config.proximal_mu * prox
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(float(loss.detach()))
        return TrainResult(num_examples=len(data), losses=tuple(losses))

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, data: TensorData) -> EvalResult:
        model.eval()
        out = model(data.x)
        metrics = {name: fn(out, data.y) for name, fn in self.metrics.items()}
        return EvalResult(num_examples=len(data), loss=float(self.loss_fn(out, data.y)), metrics=metrics)


def warm_up(task: Task, data: TensorData, config: TrainConfig) -> None:
    """One training step of `task` on a throwaway model and two examples, so that round 1 is not slower than
    the others: the first optimizer a process builds imports torch._dynamo (~800 modules, about a second), and
    autograd and the kernels load on first use. Run before joining a job (owner/data_owner_main.py does).

    Nothing of it stays: the model is discarded and torch's global random state is restored, so a warmed owner
    trains exactly as an unwarmed one would (same seeds, same updates).
    """
    with torch.random.fork_rng(devices=[]):
        model = task.create_model()
        few = TensorData(x=data.x[:2], y=data.y[:2])
        once = dataclasses.replace(config, local_steps=1, local_epochs=None, batch_size=None, proximal_mu=0.0)
        task.train(model, few, once, global_model=None)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


def iterate_batches(
    data: TensorData, config: TrainConfig, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The round's batches: `local_steps` batches, or `local_epochs` shuffled passes."""
    n = len(data)
    size = n if config.batch_size is None else min(config.batch_size, n)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    if config.local_steps is not None:
        order = torch.randperm(n, generator=generator) if size < n else torch.arange(n)
        pos = 0
        for _ in range(config.local_steps):
            if pos + size > n:
                order = torch.randperm(n, generator=generator)
                pos = 0
            idx = order[pos : pos + size]
            pos += size
            batches.append((data.x[idx], data.y[idx]))
        return batches
    assert config.local_epochs is not None
    for _ in range(config.local_epochs):
        order = torch.randperm(n, generator=generator) if size < n else torch.arange(n)
        for start in range(0, n, size):
            idx = order[start : start + size]
            batches.append((data.x[idx], data.y[idx]))
    return batches

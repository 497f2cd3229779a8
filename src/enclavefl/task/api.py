"""The task API: what a user writes once, for simulation and deployment alike.

A task knows how to build the model, train it locally for one round and evaluate it. Data never leaves the
data owner: the task receives the owner's data (`TensorData` in memory, `StreamedData` read in mini-batches, or
whatever the task's own `load_data` returns) and returns only weights and aggregate numbers. The protocol and the
values import without torch; `TorchTask` needs it (`task/optional_torch.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from enclavefl.core.job import TrainConfig
from enclavefl.task.data import StreamedData, TensorData, streamed_batches
from enclavefl.task.optional_torch import require_torch

if TYPE_CHECKING:  # torch is imported where it runs, so that this module (and `help()`) works without it
    import torch

    LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    MetricFn = Callable[[torch.Tensor, torch.Tensor], float]

OwnerData = TensorData | StreamedData
DataLoaderFn = Callable[[Path], OwnerData]
R = TypeVar("R")


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
        self, model: torch.nn.Module, data: Any, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        """Train `model` in place for one round; `model` holds the round's global weights when it is called.

        `global_model` is a second copy of them, FedProx's anchor: passed only when `config.proximal_mu > 0`,
        else None (no second model is built)."""
        ...

    def evaluate(self, model: torch.nn.Module, data: Any) -> EvalResult:
        """Loss and metrics of `model` on `data`, without changing the model."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchTask:
    """A task from three parts: a model factory, a loss and optional metrics.

    Training runs `config.local_steps` optimizer steps (or `local_epochs` passes) over the owner's data in
    mini-batches of `config.batch_size` (full batch when None; 64 for streamed data), shuffled by a generator
    seeded from `config.seed` and the round, with an optional FedProx proximal term mu/2 * ||w - w_global||^2.
    The data is `TensorData` or `StreamedData`. `load_data`, when given, turns the path a data owner passes
    (`--data`) into its data on the owner's side (a Dataset over CSV shards, an image folder, ...); without it the
    path is a safetensors file with tensors `x` and `y`. `device` ("cpu", "cuda", "cuda:1", ...; None: where the
    model is built) is the owner's own choice, never part of the job (`data-owner run --device`): the model and each
    batch move there for training and evaluation, and the model comes back to the CPU before its weights are read.
    """

    model_factory: Callable[[], torch.nn.Module]
    loss_fn: LossFn
    metrics: Mapping[str, MetricFn] = field(default_factory=dict)
    load_data: DataLoaderFn | None = None
    device: str | None = None
    # Hears each optimizer step: (step, steps in the round or None when streamed, loss); `data-owner run` draws its
    # progress bar from it. The owner's own display: never part of the job.
    on_step: Callable[[int, int | None, float], None] | None = None

    def __post_init__(self) -> None:
        require_torch("enclavefl.TorchTask")

    def create_model(self) -> torch.nn.Module:
        return self.model_factory()

    def train(
        self, model: torch.nn.Module, data: OwnerData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:

        if self.device is not None:
            return self._on_device(model, lambda: self._train(model, data, config, global_model))
        return self._train(model, data, config, global_model)

    def _on_device(self, model: torch.nn.Module, work: Callable[[], R]) -> R:
        model.to(self.device)
        try:
            return work()
        finally:
            model.to("cpu")  # the weights are read (and sent) from the CPU

    def _batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x, y) if self.device is None else (x.to(self.device), y.to(self.device))

    def _train(
        self, model: torch.nn.Module, data: OwnerData, config: TrainConfig, global_model: torch.nn.Module | None
    ) -> TrainResult:
        import torch

        model.train()
        optimizer = make_optimizer(model, config)
        anchors = (
            [p.detach().clone().to(next(model.parameters()).device) for p in global_model.parameters()]
            if global_model is not None and config.proximal_mu > 0
            else None
        )
        generator = torch.Generator().manual_seed(config.seed)
        losses: list[float] = []
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
        batches = (
            streamed_batches(data, config, generator)
            if isinstance(data, StreamedData)
            else (iterate_batches(data, config, generator))
        )
        seen = 0
        total = None if isinstance(data, StreamedData) else len(batches)  # type: ignore[arg-type]
        for step, (raw_x, raw_y) in enumerate(batches, start=1):
            batch_x, batch_y = self._batch(raw_x, raw_y)
            seen += int(batch_x.shape[0])
            optimizer.zero_grad()
            loss = self.loss_fn(model(batch_x), batch_y)
            if anchors is not None:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchors, strict=True))
                loss = loss + 0.5 * config.proximal_mu * prox
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(float(loss.detach()))
            if self.on_step is not None:
                self.on_step(step, total, losses[-1])
        if isinstance(data, StreamedData):
            return TrainResult(num_examples=data.size() or seen, losses=tuple(losses))
        return TrainResult(num_examples=len(data), losses=tuple(losses))

    def evaluate(self, model: torch.nn.Module, data: OwnerData) -> EvalResult:
        if self.device is not None:
            return self._on_device(model, lambda: self._evaluate(model, data))
        return self._evaluate(model, data)

    def _evaluate(self, model: torch.nn.Module, data: OwnerData) -> EvalResult:
        import torch

        model.eval()
        with torch.no_grad():
            if isinstance(data, StreamedData):
                return self._evaluate_streamed(model, data)
            x, y = self._batch(data.x, data.y)
            out = model(x)
            metrics = {name: fn(out, y) for name, fn in self.metrics.items()}
            return EvalResult(num_examples=len(data), loss=float(self.loss_fn(out, y)), metrics=metrics)

    def _evaluate_streamed(self, model: torch.nn.Module, data: StreamedData) -> EvalResult:
        """Example-weighted means over the batches (exact for a mean loss; a sum loss is summed)."""
        total, loss_sum = 0, 0.0
        metric_sums = dict.fromkeys(self.metrics, 0.0)
        for raw_x, raw_y in data.loader(data.eval_batch_size):
            batch_x, batch_y = self._batch(raw_x, raw_y)
            n = int(batch_x.shape[0])
            out = model(batch_x)
            loss_sum += float(self.loss_fn(out, batch_y)) * n
            for name, fn in self.metrics.items():
                metric_sums[name] += fn(out, batch_y) * n
            total += n
        if total == 0:
            raise ValueError("the dataset is empty")
        metrics = {name: value / total for name, value in metric_sums.items()}
        return EvalResult(num_examples=total, loss=loss_sum / total, metrics=metrics)


def warm_up(task: Task, data: Any, config: TrainConfig) -> bool:
    """One training step of `task` on a throwaway model and two examples, so that round 1 is not slower than
    the others: the first optimizer a process builds imports torch._dynamo (~800 modules, about a second), and
    autograd and the kernels load on first use. Run before joining a job (owner/data_owner_main.py does).

    Nothing of it stays: the model is discarded and torch's global random state is restored, so a warmed owner
    trains exactly as an unwarmed one would (same seeds, same updates). Only a `TorchTask` over `TensorData` or
    `StreamedData` is warmed (returns True): another task's train() may have effects of its own (a Flower
    client keeps state), so it is left alone (returns False).
    """
    if not isinstance(task, TorchTask) or not isinstance(data, TensorData | StreamedData):
        return False
    import torch

    with torch.random.fork_rng(devices=[]):
        model = task.create_model()
        few = TensorData(x=data.x[:2], y=data.y[:2]) if isinstance(data, TensorData) else data
        once = dataclasses.replace(config, local_steps=1, local_epochs=None, batch_size=2, proximal_mu=0.0)
        task.train(model, few, once, global_model=None)
    return True


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)


def iterate_batches(
    data: TensorData, config: TrainConfig, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The round's batches: `local_steps` batches, or `local_epochs` shuffled passes."""
    import torch

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


def resolve_device(device: str) -> str:
    """`--device`: "auto" is CUDA when torch sees a GPU, else the CPU; a CUDA device torch cannot see is a
    ConfigError (one line) before anything trains."""
    import torch

    from enclavefl.errors import ConfigError

    chosen = device.strip().lower()
    if chosen == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if chosen == "cpu":
        return "cpu"
    if chosen == "cuda" or chosen.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: torch sees no CUDA device here (use cpu or auto)")
        return chosen
    raise ConfigError(f"--device {device!r}: choose cpu, cuda, cuda:N or auto")

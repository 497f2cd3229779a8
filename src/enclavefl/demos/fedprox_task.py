"""The FedProx paper's local work: multinomial logistic regression, and devices that straggle.

    task = StragglerTask(inner=softmax_regression_task(), straggler_fraction=0.9, drop_stragglers=False)
    simulate(task, {"device01": data, ...}, train=TrainConfig(local_epochs=20, batch_size=10, lr=0.01,
             proximal_mu=1.0))

`SoftmaxRegression` is a NumpyTask whose local solver is SGD on the cross-entropy with the gradient written out,
plus FedProx's proximal term mu/2 * ||w - w_global||^2 when `config.proximal_mu > 0`. It takes the same steps as
`TorchTask(model_factory=lambda: nn.Linear(60, 10), loss_fn=cross_entropy)` (same shuffles from `config.seed`,
same batches, same update; tests/demos/test_fedprox.py checks it) 7-10x faster (benchmarks/bench_fedprox_solver.py):
the paper's setting is 20 epochs of batches of 10, about 10,000 steps a round over 30 devices, and autograd's
overhead per step dominates a 610-weight model.

`StragglerTask` wraps any task: each round a device straggles with probability `straggler_fraction`, drawn from the
per-owner, per-round seed the data owner passes (`config.seed`), and then manages only 1..E-1 of the E epochs
(E = `config.local_epochs`; the authors' `randint(1, num_epochs)`). FedAvg drops a straggler's work, FedProx takes
it (`drop_stragglers`). A device cannot leave a round out through the public API, so a dropped device uploads the
round's global model unchanged at FedAvg weight 1 while working devices declare their example count times
WORK_WEIGHT (docs/fedprox.md bounds the difference from leaving the dropped devices out).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from enclavefl.core.job import TrainConfig
from enclavefl.demos.fedprox_data import NUM_CLASSES, NUM_FEATURES
from enclavefl.errors import ConfigError
from enclavefl.task import EvalResult, Task, TensorData, TrainResult
from enclavefl.task.numpy_task import NumpyFitResult, NumpyTaskAdapter

WORK_WEIGHT = 10_000  # a working device's FedAvg weight per example; a dropped device weighs 1
STRAGGLER_STREAM = 0x5354_5241_47  # "STRAG": the schedule's own stream beside the task's shuffling
Arrays = Mapping[str, npt.NDArray[Any]]
F32 = npt.NDArray[np.float32]


def logistic_regression() -> nn.Module:
    """The paper's model: one linear layer from 60 features to 10 classes (the logits of a softmax)."""
    return nn.Linear(NUM_FEATURES, NUM_CLASSES)


def cross_entropy_and_gradient(w: F32, b: F32, x: F32, y: npt.NDArray[np.int64]) -> tuple[float, F32, F32]:
    """Mean cross-entropy of softmax(x w^T + b) against y, and its gradient in w and b."""
    logits = x @ w.T + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(-np.log(np.maximum(p[rows, y], 1e-30)).mean())
    p[rows, y] -= 1.0
    p /= len(y)
    return loss, p.T @ x, p.sum(axis=0)


@dataclass(frozen=True, slots=True)
class SoftmaxRegression:
    """A NumpyTask: multinomial logistic regression trained by mini-batch SGD (with FedProx's term when mu > 0)."""

    def initial_weights(self) -> Arrays:
        return {"weight": np.zeros((NUM_CLASSES, NUM_FEATURES), np.float32), "bias": np.zeros(NUM_CLASSES, np.float32)}

    def fit(self, weights: Arrays, data: TensorData, config: TrainConfig) -> NumpyFitResult:
        if config.optimizer != "sgd" or config.momentum != 0 or config.local_epochs is None:
            raise ConfigError("SoftmaxRegression trains with plain SGD (no momentum) for train.local_epochs")
        w0, b0 = np.asarray(weights["weight"], np.float32), np.asarray(weights["bias"], np.float32)
        w, b = w0.copy(), b0.copy()
        x, y = data.x.numpy(), data.y.numpy()
        lr, mu = np.float32(config.lr), np.float32(config.proximal_mu)
        size = batch_size_of(len(y), config)
        losses: list[float] = []
        for order in epoch_orders(len(y), config):
            for start in range(0, len(y), size):
                idx = order[start : start + size]
                loss, gw, gb = cross_entropy_and_gradient(w, b, x[idx], y[idx])
                if mu > 0:  # FedProx: the gradient of mu/2 * ||(w, b) - (w0, b0)||^2
                    loss += 0.5 * float(mu) * float(((w - w0) ** 2).sum() + ((b - b0) ** 2).sum())
                    gw, gb = gw + mu * (w - w0), gb + mu * (b - b0)
                w -= lr * gw.astype(np.float32)
                b -= lr * gb.astype(np.float32)
                losses.append(loss)
        return NumpyFitResult(weights={"weight": w, "bias": b}, num_examples=len(y), losses=tuple(losses))

    def evaluate(self, weights: Arrays, data: TensorData) -> EvalResult:
        w, b = np.asarray(weights["weight"], np.float32), np.asarray(weights["bias"], np.float32)
        x, y = data.x.numpy(), data.y.numpy()
        loss, _, _ = cross_entropy_and_gradient(w, b, x, y)
        accuracy = float((np.argmax(x @ w.T + b, axis=1) == y).mean())
        return EvalResult(num_examples=len(y), loss=loss, metrics={"accuracy": accuracy})


def batch_size_of(n: int, config: TrainConfig) -> int:
    return n if config.batch_size is None else min(config.batch_size, n)


def epoch_orders(n: int, config: TrainConfig) -> list[npt.NDArray[np.int64]]:
    """Each epoch's order of the examples: TorchTask's (a torch generator seeded from `config.seed`, one
    permutation per epoch unless one batch holds everything), so both solvers see the same batches."""
    assert config.local_epochs is not None
    generator = torch.Generator().manual_seed(config.seed)
    size = batch_size_of(n, config)
    return [
        (torch.randperm(n, generator=generator) if size < n else torch.arange(n)).numpy()
        for _ in range(config.local_epochs)
    ]


def softmax_regression_task() -> NumpyTaskAdapter:
    """`SoftmaxRegression` as a Task (data owners, simulate and the CLI run it as any other)."""
    return NumpyTaskAdapter(SoftmaxRegression())


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglerPlan:
    """One device's work in one round: all of it, or a straggler's `epochs`."""

    straggler: bool
    epochs: int


def straggler_plan(seed: int, *, fraction: float, full_epochs: int) -> StragglerPlan:
    """Whether the device straggles this round and how many epochs it manages (1..full_epochs-1), from its seed.

    The schedule simulates slow hardware: not a secret, so a numpy Generator is fine here."""
    rng = np.random.default_rng([seed, STRAGGLER_STREAM])
    if rng.random() >= fraction:
        return StragglerPlan(straggler=False, epochs=full_epochs)
    return StragglerPlan(straggler=True, epochs=int(rng.integers(1, max(full_epochs, 2))))


@dataclass(frozen=True, slots=True, kw_only=True)
class StragglerTask:
    """A task whose device, each round, may straggle: FedAvg drops its work, FedProx trains its partial epochs."""

    inner: Task
    straggler_fraction: float
    drop_stragglers: bool

    def __post_init__(self) -> None:
        if not 0.0 <= self.straggler_fraction <= 1.0:
            raise ConfigError(f"straggler_fraction must be in [0, 1], got {self.straggler_fraction!r}")

    def create_model(self) -> nn.Module:
        return self.inner.create_model()

    def train(self, model: nn.Module, data: Any, config: TrainConfig, *, global_model: nn.Module | None) -> TrainResult:
        if config.local_epochs is None:
            raise ConfigError("the straggler schedule counts epochs: set train.local_epochs")
        plan = straggler_plan(config.seed, fraction=self.straggler_fraction, full_epochs=config.local_epochs)
        if plan.straggler and self.drop_stragglers:
            return TrainResult(num_examples=1, losses=())  # the global model back, at a negligible weight
        local = dataclasses.replace(config, local_epochs=plan.epochs)
        result = self.inner.train(model, data, local, global_model=global_model)
        return dataclasses.replace(result, num_examples=result.num_examples * WORK_WEIGHT)

    def evaluate(self, model: nn.Module, data: Any) -> EvalResult:
        return self.inner.evaluate(model, data)

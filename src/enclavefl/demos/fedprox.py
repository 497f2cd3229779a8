"""FedAvg against FedProx with stragglers on Synthetic(alpha, beta), each run through `enclavefl.simulate`.

    fed = synthetic_federation(alpha=1.0, beta=1.0, seed=0)
    curve = run_method(fed, FEDPROX, straggler_fraction=0.9, rounds=200, on_point=print)
    curve.train_loss[-1], curve.test_accuracy[-1]

The setting of Li et al., "Federated Optimization in Heterogeneous Networks" (MLSys 2020, section 5 and figure 1;
the authors' run_fedavg.sh / run_fedprox.sh in github.com/litian96/FedProx): multinomial logistic regression, SGD
with learning rate 0.01, batches of 10, 20 local epochs, mu = 1 for FedProx; stragglers as in fedprox_task.py.

How this differs from the paper, and why (docs/fedprox.md says it for readers):
- Every device takes part in every round (the paper samples 10 of 30 per round): `simulate` has no per-round
  cohort; every enrolled owner is expected every round.
- FedAvg's "drop" is a weight (fedprox_task.py): the release is the average over the working devices, pulled
  toward the round's start by at most dropped / (WORK_WEIGHT * working examples) < 1e-4 of their difference.
- The paper's straggler count per round is exact (90% of the 10 sampled); here each device draws its own.
- The curves are the global model released after each round, evaluated outside the federation on every device's
  pooled data (training loss, test accuracy) as the paper's plots are: `GlobalModelRecorder` keeps each global
  model the devices receive and matches it to the rounds by the SHA-256 in the round summaries.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from enclavefl.api.simulation import simulate
from enclavefl.core.job import TrainConfig
from enclavefl.core.messages import RoundSummary
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.demos.fedprox_data import SyntheticFederation
from enclavefl.demos.fedprox_task import StragglerTask, logistic_regression, softmax_regression_task
from enclavefl.errors import ConfigError
from enclavefl.task import EvalResult, Task, TensorData, TrainResult

PointCallback = Callable[[int, float, float], None]  # (round, training loss, test accuracy)


@dataclass(frozen=True, slots=True, kw_only=True)
class Method:
    """A method of the paper's figure 1: whether stragglers' partial work counts, and FedProx's mu."""

    name: str
    proximal_mu: float
    drop_stragglers: bool


FEDAVG = Method(name="FedAvg", proximal_mu=0.0, drop_stragglers=True)
FEDPROX = Method(name="FedProx (mu=1)", proximal_mu=1.0, drop_stragglers=False)
FEDPROX_MU0 = Method(name="FedProx (mu=0)", proximal_mu=0.0, drop_stragglers=False)


def paper_train_config(*, proximal_mu: float = 0.0, seed: int = 0) -> TrainConfig:
    """The authors' local solver for the synthetic data: SGD, lr 0.01, batches of 10, 20 epochs."""
    return TrainConfig(local_epochs=20, batch_size=10, lr=0.01, proximal_mu=proximal_mu, seed=seed)


class GlobalModelRecorder:
    """Keeps each distinct global model the devices receive, by the SHA-256 the round summaries name."""

    def __init__(self) -> None:
        self._models: dict[str, ModelWeights] = {}
        self._lock = threading.Lock()  # owners may train in threads

    def see(self, model: nn.Module) -> None:
        weights = weights_from_module(model)
        with self._lock:
            self._models.setdefault(weights.sha256().hex(), weights)

    def model(self, sha256: str) -> ModelWeights:
        with self._lock:
            found = self._models.get(sha256)
        if found is None:
            raise ConfigError(f"no device received the global model {sha256[:16]}…")
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingTask:
    """Instrumentation: `inner`, and each global model a device starts a round from goes to `recorder`."""

    inner: Task
    recorder: GlobalModelRecorder

    def create_model(self) -> nn.Module:
        return self.inner.create_model()

    def train(self, model: nn.Module, data: Any, config: TrainConfig, *, global_model: nn.Module | None) -> TrainResult:
        self.recorder.see(model)  # it holds the round's global weights when train() is called
        return self.inner.train(model, data, config, global_model=global_model)

    def evaluate(self, model: nn.Module, data: Any) -> EvalResult:
        return self.inner.evaluate(model, data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    """The global model after rounds 0..R: loss on the pooled training data, accuracy on the pooled test data."""

    method: str
    straggler_fraction: float
    train_loss: tuple[float, ...]
    test_accuracy: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.method}, {self.straggler_fraction:.0%} stragglers"


def evaluate_global(weights: ModelWeights, train: TensorData, test: TensorData) -> tuple[float, float]:
    """(training loss, test accuracy) of one global model over every device's data."""
    model = logistic_regression()
    load_weights_into(model, weights)
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(model(train.x), train.y))
        accuracy = float((model(test.x).argmax(dim=1) == test.y).float().mean())
    return loss, accuracy


def initial_weights(seed: int) -> ModelWeights:
    """The paper's model before training, the same for every method: nn.Linear's initialisation under `seed`."""
    torch.manual_seed(seed)
    return weights_from_module(logistic_regression())


def run_method(
    fed: SyntheticFederation,
    method: Method,
    *,
    straggler_fraction: float,
    rounds: int,
    train: TrainConfig | None = None,
    seed: int = 0,
    on_point: PointCallback | None = None,
    platform_dir: str | os.PathLike[str] | None = None,
) -> Curve:
    """One curve of figure 1: `method` on `fed` for `rounds` rounds through `simulate` (the same initial model and
    straggler schedule for every method of one seed). `on_point` hears each round's point (one round behind: the
    model released after round r is evaluated when the devices have received it). `platform_dir`: simulate's (one
    simulated platform for several runs saves making its keys each time)."""
    config = dataclasses.replace(train or paper_train_config(seed=seed), proximal_mu=method.proximal_mu)
    recorder = GlobalModelRecorder()
    straggling = StragglerTask(
        inner=softmax_regression_task(),
        straggler_fraction=straggler_fraction,
        drop_stragglers=method.drop_stragglers,
    )
    pooled_train, pooled_test = fed.pooled("train"), fed.pooled("test")
    initial = initial_weights(seed)
    points = [evaluate_global(initial, pooled_train, pooled_test)]
    released: list[str] = []

    def point(weights: ModelWeights) -> None:
        points.append(evaluate_global(weights, pooled_train, pooled_test))
        if on_point is not None:
            on_point(len(points) - 1, *points[-1])

    def hear(summary: RoundSummary) -> None:
        if released:  # the previous round's release: the devices received it at this round's start
            point(recorder.model(released[-1]))
        released.append(summary.global_model_sha256)

    if on_point is not None:
        on_point(0, *points[0])
    history = simulate(
        RecordingTask(inner=straggling, recorder=recorder),
        {name: device.train for name, device in fed.devices.items()},
        rounds=rounds,
        train=config,
        initial_model=initial,
        on_round=hear,
        platform_dir=platform_dir,
    )
    point(history.final_model)
    return Curve(
        method=method.name,
        straggler_fraction=straggler_fraction,
        train_loss=tuple(p[0] for p in points),
        test_accuracy=tuple(p[1] for p in points),
    )

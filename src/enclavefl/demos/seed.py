"""The seed scenario: PySyft's "Bob, Alice and a secure worker" tutorial, done with attestation.

Data [[0,0],[0,1],[1,0],[1,1]] with targets [0,0,1,1]; Bob holds the first two rows, Alice the last two;
nn.Linear(2, 1), SGD lr 0.1, loss = sum of squared errors; each round both start from the global model, take
5 local steps, and the secure worker averages the two models; 10 rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from enclavefl.api.simulation import SimulationHistory, simulate
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.owner.data_owner import LocalReport
from enclavefl.sim.federation import RoundCallback
from enclavefl.task import TensorData, TorchTask

SEED_ROUNDS = 10
SEED_LOCAL_STEPS = 5
SEED_LR = 0.1


def sum_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).sum()


def seed_data() -> TensorData:
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    return TensorData(x=x, y=y)


def seed_split() -> dict[str, TensorData]:
    data = seed_data()
    return {
        "bob": TensorData(x=data.x[:2], y=data.y[:2]),
        "alice": TensorData(x=data.x[2:], y=data.y[2:]),
    }


def seed_model() -> torch.nn.Module:
    return torch.nn.Linear(2, 1)


SEED_TASK = TorchTask(model_factory=seed_model, loss_fn=sum_squared_error)


def initial_model(seed: int) -> ModelWeights:
    torch.manual_seed(seed)
    return weights_from_module(seed_model())


# Masked mode for the seed job: clip_norm far above the seed's deltas (so clipping never changes the run) and
# 2^20 fixed-point steps per unit: the mean of two updates is exact to 2^-21 per coordinate and round.
SEED_MASKING = SecureAggregationSpec(degree=2, threshold=2, scale=float(1 << 20), modulus_bits=64, clip_norm=100.0)


def seed_job(initial: ModelWeights, *, rounds: int = SEED_ROUNDS, masked: bool = False) -> JobSpec:
    return JobSpec(
        name="seed-bob-alice",
        rounds=rounds,
        train=TrainConfig(local_steps=SEED_LOCAL_STEPS, lr=SEED_LR),
        # the tutorial averaged the two models without weights
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=2,
        data_owners=(DataOwnerSpec(name="bob"), DataOwnerSpec(name="alice")),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        secure_aggregation=SEED_MASKING if masked else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedEvaluation:
    predictions: tuple[float, ...]
    targets: tuple[float, ...]
    loss: float


def evaluate(model: ModelWeights) -> SeedEvaluation:
    """The model owner's evaluation of the final model on the (public, toy) seed data."""
    module = seed_model()
    load_weights_into(module, model)
    data = seed_data()
    result = SEED_TASK.evaluate(module, data)
    with torch.no_grad():
        predictions = tuple(float(v) for v in module(data.x).reshape(-1))
    return SeedEvaluation(
        predictions=predictions, targets=tuple(float(v) for v in data.y.reshape(-1)), loss=result.loss
    )


def run_seed(
    *,
    seed: int = 0,
    rounds: int = SEED_ROUNDS,
    platform_dir: Path | None = None,
    on_round: RoundCallback | None = None,
    report: LocalReport | None = None,
    datasets: Mapping[str, TensorData] | None = None,
    masked: bool = False,
) -> tuple[SimulationHistory, SeedEvaluation]:
    """Run the seed federation in process with the INSECURE simulated enclave (`enclavefl.simulate`).

    `masked`: the job asks for secure aggregation (owners mask their updates; the enclave unmasks the sum).
    """
    initial = initial_model(seed)
    history = simulate(
        SEED_TASK,
        datasets or seed_split(),
        job=seed_job(initial, rounds=rounds, masked=masked),
        initial_model=initial,
        platform_dir=platform_dir,
        on_round=on_round,
        on_line=report,
    )
    return history, evaluate(history.final_model)

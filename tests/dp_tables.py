"""DP tables for test jobs, with the epsilon schedule computed as `enclavefl job init` computes it."""

from __future__ import annotations

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.weights import ModelSchema, TensorSpec
from enclavefl.privacy.epsilon import dp_params
from enclavefl.privacy.params import AccountantName


def dp_table(
    rounds: int,
    *,
    clip_norm: float = 1.0,
    noise_multiplier: float = 1.0,
    delta: float = 1e-5,
    epsilon_budget: float | None = None,
    accountant: AccountantName = "rdp",
) -> dict[str, object]:
    """`JobSpec.dp` for a job of `rounds` rounds."""
    return dp_params(
        clip_norm=clip_norm,
        noise_multiplier=noise_multiplier,
        delta=delta,
        rounds=rounds,
        epsilon_budget=epsilon_budget,
        accountant=accountant,
    ).to_mapping()


def dp_job(rounds: int, *, owners: int = 2, **dp: object) -> JobSpec:
    """A small unweighted-FedAvg job with central DP and `owners` enrolled data owners."""
    return JobSpec(
        name="dp-job",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=2,
        data_owners=tuple(DataOwnerSpec(name=f"owner{i}") for i in range(owners)),
        model_schema=ModelSchema(tensors=(TensorSpec(name="w", shape=(2,), dtype="float32"),)),
        initial_model_sha256="00" * 32,
        dp=dp_table(rounds, **dp),  # type: ignore[arg-type]
    )

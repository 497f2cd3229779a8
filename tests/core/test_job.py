"""The job digest is canonical and covers every field a data owner agrees to."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import JobSpecError


def job(**changes: object) -> JobSpec:
    schema = ModelWeights({"w": np.zeros(3, np.float32)}).schema
    base = JobSpec(
        name="j",
        rounds=3,
        train=TrainConfig(local_steps=2),
        data_owners=(DataOwnerSpec(name="bob"), DataOwnerSpec(name="alice")),
        model_schema=schema,
        initial_model_sha256="00" * 32,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_equal_specs_have_equal_digests() -> None:
    assert job().digest() == job().digest()
    assert len(job().digest()) == 32


@pytest.mark.parametrize(
    "change",
    [
        {"rounds": 4},
        {"train": TrainConfig(local_steps=3)},
        {"strategy": StrategySpec(name="fedavg", params={"weighted": False})},
        {"min_contributions": 2},
        {"round_deadline_seconds": 10.0},
        {"data_owners": (DataOwnerSpec(name="bob"),)},
        {"model_schema": ModelWeights({"w": np.zeros(4, np.float32)}).schema},
        {"initial_model_sha256": "11" * 32},
        {"dp": {"clip_norm": 1.0}},
    ],
)
def test_every_agreed_field_changes_the_digest(change: dict[str, object]) -> None:
    assert job(**change).digest() != job().digest()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rounds": 0}, "rounds"),
        ({"min_contributions": 3}, "exceeds the 2 enrolled"),
        ({"data_owners": (DataOwnerSpec(name="x"), DataOwnerSpec(name="x"))}, "unique"),
    ],
)
def test_invalid_spec_names_the_field(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(JobSpecError, match=fragment):
        job(**kwargs)


def test_train_config_needs_exactly_one_of_steps_and_epochs() -> None:
    with pytest.raises(JobSpecError, match="exactly one"):
        TrainConfig()
    with pytest.raises(JobSpecError, match="exactly one"):
        TrainConfig(local_steps=1, local_epochs=1)
    with pytest.raises(JobSpecError, match=r"train\.lr"):
        TrainConfig(local_steps=1, lr=0.0)

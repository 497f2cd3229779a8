"""A job binds the frozen base model its travelling tensors train on: name and digest enter the job digest, and job
files written before the field existed keep their digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.job import BaseModelSpec, DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import JobSpecError

BASE = BaseModelSpec(name="tiny-llama", sha256="ab" * 32)

# A job file as the code before issue 27 wrote and read it; its digest was computed by that code and pinned here.
OLD_JOB_TOML = """\
name = "adapters-before-issue-27"
rounds = 3
min_contributions = 2
round_deadline_seconds = 120.0
initial_model_sha256 = "5f0c8d4cb1b5d7b0c6b1d8a4e9f2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"

[train]
local_steps = 5
lr = 0.01
optimizer = "adam"

[strategy]
name = "fedavg"
params = { weighted = true }

[[model_schema]]
name = "lora_A.weight"
shape = [4, 32]
dtype = "float32"

[[model_schema]]
name = "lora_B.weight"
shape = [32, 4]
dtype = "float32"
"""
OLD_JOB_DIGEST = "116bf7103ae9d4147d9a5ed46b9ecf498b4f89ff1f33c8ba31a1a48da708a600"


def adapter_job(**changes: object) -> JobSpec:
    schema = ModelWeights({"lora_A.weight": np.zeros((4, 32), np.float32)}).schema
    job = JobSpec(
        name="adapters",
        rounds=2,
        train=TrainConfig(local_steps=3, optimizer="adam", lr=0.01),
        data_owners=(DataOwnerSpec(name="bob"), DataOwnerSpec(name="alice")),
        model_schema=schema,
        initial_model_sha256="00" * 32,
        base_model=BASE,
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def test_changing_the_base_model_digest_changes_the_job_digest() -> None:
    other = BaseModelSpec(name=BASE.name, sha256="cd" * 32)

    assert adapter_job(base_model=other).digest() != adapter_job().digest()
    assert adapter_job(base_model=None).digest() != adapter_job().digest()


def test_the_base_model_name_is_part_of_the_job_digest() -> None:
    assert adapter_job(base_model=BaseModelSpec(name="other", sha256=BASE.sha256)).digest() != adapter_job().digest()


def test_an_old_job_file_without_a_base_model_keeps_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(OLD_JOB_TOML)

    job = load_job(path)

    assert job.base_model is None
    assert job.digest().hex() == OLD_JOB_DIGEST
    assert "base_model" not in job.to_canonical()


def test_a_job_file_with_a_base_model_loads_and_dumps_back_to_the_same_digest(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(OLD_JOB_TOML + f'\n[base_model]\nname = "tiny-llama"\nsha256 = "{BASE.sha256}"\n')

    job = load_job(path)
    (tmp_path / "again.toml").write_text(dump_job(job))

    assert job.base_model == BASE
    assert job.digest().hex() != OLD_JOB_DIGEST
    assert load_job(tmp_path / "again.toml").digest() == job.digest()


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('name = "b"\nsha256 = "xyz"', "base_model.sha256"),
        ('name = "b"\nsha256 = "' + "AB" * 32 + '"', "base_model.sha256"),
        ('sha256 = "' + "ab" * 32 + '"', "base_model.name"),
        ('name = ""\nsha256 = "' + "ab" * 32 + '"', "base_model.name"),
        ('name = "b"\nsha256 = "' + "ab" * 32 + '"\npath = "/models"', "base_model.path"),
    ],
)
def test_a_bad_base_model_table_names_the_field(tmp_path: Path, table: str, field: str) -> None:
    path = tmp_path / "job.toml"
    path.write_text(OLD_JOB_TOML + f"\n[base_model]\n{table}\n")

    with pytest.raises(JobSpecError) as info:
        load_job(path)

    assert str(info.value).startswith(field)

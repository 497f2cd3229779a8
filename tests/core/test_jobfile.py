"""Job files load with validation that names the field, and dump to a self-contained file with the same digest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import JobSpecError
from enclavefl.transport.owner_tls import OwnerCredentials

JOB_TOML = """
name = "demo"
rounds = 3
min_contributions = 2
round_deadline_seconds = 60
on_round_failure = "stop"
initial_model = "model.safetensors"
[train]
local_steps = 5
lr = 0.05
[strategy]
name = "fedavg"
params = { weighted = true }
[model_owner]
certificate = "mo.pem"
[[data_owners]]
name = "alice"
certificate = "alice.pem"
[[data_owners]]
name = "bob"
certificate = "bob.pem"
"""


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    weights = ModelWeights({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    (tmp_path / "model.safetensors").write_bytes(encode_weights(weights))
    for name in ("mo", "alice", "bob"):
        (tmp_path / f"{name}.pem").write_bytes(OwnerCredentials.generate(name).certificate_pem)
    (tmp_path / "job.toml").write_text(JOB_TOML)
    return tmp_path


def test_a_job_file_loads_with_model_schema_hash_and_certificates(job_dir: Path) -> None:
    job = load_job(job_dir / "job.toml")

    weights = ModelWeights({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert job.initial_model_sha256 == weights.sha256().hex()
    assert job.model_schema == weights.schema
    assert [o.name for o in job.data_owners] == ["alice", "bob"]
    assert job.data_owners[0].certificate_pem == (job_dir / "alice.pem").read_text().strip() + "\n"
    assert job.on_round_failure == "stop" and job.train.lr == 0.05 and job.round_deadline_seconds == 60.0


def test_a_dumped_job_loads_back_to_the_same_digest(job_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    job = load_job(job_dir / "job.toml")
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "job.toml"

    elsewhere.write_text(dump_job(job))

    assert load_job(elsewhere).digest() == job.digest()


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("lr = 0.05", 'lr = "fast"', "train.lr"),
        ("lr = 0.05", "lr = -1.0", "train.lr"),
        ("rounds = 3", "rounds = 0", "rounds"),
        ('on_round_failure = "stop"', 'on_round_failure = "pray"', "on_round_failure"),
        ('certificate = "bob.pem"', 'certificate = "missing.pem"', "data_owners[1].certificate"),
        ('name = "bob"', 'name = "bob"\ncolour = "red"', "data_owners[1].colour"),
        ("local_steps = 5", "local_steps = 5\nwarmup = 1", "train.warmup"),
        ('initial_model = "model.safetensors"', 'initial_model = "job.toml"', "initial_model"),
        ("min_contributions = 2", "min_contributions = 3", "min_contributions"),
    ],
)
def test_an_invalid_job_file_names_the_field(job_dir: Path, old: str, new: str, field: str) -> None:
    path = job_dir / "job.toml"
    path.write_text(JOB_TOML.replace(old, new, 1))

    with pytest.raises(JobSpecError) as info:
        load_job(path)

    assert str(info.value).startswith(field)


def test_fields_added_later_leave_older_digests_unchanged() -> None:
    base = JobSpec(name="j", rounds=1, train=TrainConfig(local_steps=1), data_owners=(DataOwnerSpec(name="a"),))

    canonical = base.to_canonical()

    assert "on_round_failure" not in canonical and "model_owner_certificate_pem" not in canonical
    assert "certificate_pem" not in canonical["data_owners"][0]  # type: ignore[index]

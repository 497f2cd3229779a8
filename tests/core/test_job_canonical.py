"""The enclave loads a job in its canonical form: each job comes back equal, same digest; nothing else loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from enclavefl.api.jobs import make_job
from enclavefl.core.job import JOB_DIGEST_DOMAIN, BaseModelSpec, JobSpec
from enclavefl.core.job_canonical import job_from_canonical, load_canonical_job
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import JobSpecError
from enclavefl.transport.owner_tls import OwnerCredentials

MODEL = ModelWeights({"b": np.zeros(2, np.float32), "w": np.zeros((2, 3), np.float32)})


@pytest.fixture(scope="module")
def certificates() -> dict[str, str]:
    return {name: OwnerCredentials.generate(name).certificate_pem.decode() for name in ("mo", "alice", "bob", "carol")}


def _job(certificates: dict[str, str], **options: object) -> JobSpec:
    owners = {name: pem for name, pem in certificates.items() if name != "mo"}
    return make_job(
        name="canonical", initial_model=MODEL, owners=owners, model_owner_certificate=certificates["mo"], **options
    )  # type: ignore[arg-type]


JOBS = {
    "plain": {},
    "later fields": {"on_round_failure": "stop", "max_round_attempts": 5, "max_examples_per_update": 1000},
    "dp": {"dp_epsilon": 8.0, "rounds": 3},
    "robust rule": {"strategy": "trimmed_mean", "params": {"beta": 0.2}, "min_contributions": 3},
    "server optimizer": {"strategy": "fedadam", "params": {}},
    "masked": {"masked": True, "min_contributions": 3},
    "cohort": {"clients_per_round": 2},
    "evaluation": {"evaluate_every": 2},
    "base model": {"base_model": BaseModelSpec(name="base", sha256="ab" * 32)},
}


@pytest.mark.parametrize("options", JOBS.values(), ids=JOBS.keys())
def test_every_kind_of_job_loads_back_equal_with_the_digest_of_its_text(
    certificates: dict[str, str], options: dict[str, object]
) -> None:
    job = _job(certificates, **options)
    text = job.canonical_text()

    loaded = job_from_canonical(text)

    assert loaded == job
    assert loaded.digest() == job.digest() == hashlib.sha256(JOB_DIGEST_DOMAIN + text.encode()).digest()


def test_the_canonical_file_of_a_job_toml_has_the_digest_of_the_toml(
    certificates: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "job.toml").write_text(dump_job(_job(certificates, dp_epsilon=4.0, masked=True, min_contributions=3)))
    from_toml = load_job(tmp_path / "job.toml")
    (tmp_path / "job.json").write_text(from_toml.canonical_text() + "\n")

    assert load_canonical_job(tmp_path / "job.json").digest() == from_toml.digest()


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('"rounds":10', '"rounds":"10"', "rounds: expected an integer"),
        ('"rounds":10', '"rounds":true', "rounds: expected an integer"),
        ('"name":"canonical"', '"name":null', "name: expected a string"),
        ('"lr":0.1', '"lr":NaN', "NaN is not a number"),
        ('"rounds":10', '"rounds":10,"rounds":11', "appears twice"),
        ('"rounds":10', '"rounds":10,"surprise":1', "not the canonical form"),
        ('"rounds":10', '"rounds":10,"on_round_failure":"retry"', "not the canonical form"),  # a default written out
        ('"dtype":"float32"', '"dtype":"object"', "model_schema[0].dtype: unsupported dtype"),
        ('"shape":[2]', '"shape":[-2]', "model_schema[0].shape"),
        ('"initial_model_sha256":"', '"initial_model_sha256":"X', "initial_model_sha256: must be 64"),
        ("-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----", "certificate_pem: not a PEM certificate"),
        ('"min_contributions":2', '"min_contributions":9', "min_contributions: 9 exceeds"),  # JobSpec's own check
        ('"local_steps":5', '"local_steps":null', "train: set exactly one of local_steps and local_epochs"),
    ],
)
def test_a_text_that_is_not_a_valid_canonical_job_is_refused_naming_why(
    certificates: dict[str, str], old: str, new: str, fragment: str
) -> None:
    text = _edit(_job(certificates).canonical_text(), old, new)

    with pytest.raises(JobSpecError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        job_from_canonical(text)


def test_the_toml_form_and_a_pretty_printed_form_are_refused(certificates: dict[str, str]) -> None:
    job = _job(certificates)

    with pytest.raises(JobSpecError, match="not canonical JSON"):
        job_from_canonical(dump_job(job))
    with pytest.raises(JobSpecError, match="not the canonical form"):
        job_from_canonical(job.canonical_text().replace(",", ", "))


def test_an_unreadable_job_file_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="cannot read the job"):
        load_canonical_job(tmp_path / "absent.json")


def test_a_text_nested_too_deep_to_parse_is_one_error() -> None:
    with pytest.raises(JobSpecError, match="not canonical JSON"):
        job_from_canonical("[" * 100_000 + "]" * 100_000)

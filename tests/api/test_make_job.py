"""`make_job` is the one job builder: the API's and `enclavefl job init`'s, with the same defaults and checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import enclavefl
from enclavefl import TrainConfig
from enclavefl.cli.main import app
from enclavefl.core.codec import encode_weights
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ConfigError, ReleaseBelowK
from enclavefl.transport.owner_tls import OwnerCredentials

INITIAL = ModelWeights({"w": np.zeros((2, 1), np.float32), "b": np.zeros(1, np.float32)})


@pytest.fixture(scope="module")
def certificates() -> dict[str, str]:
    return {name: OwnerCredentials.generate(name).certificate_pem.decode() for name in ("alice", "bob")}


def test_there_is_one_public_job_builder() -> None:
    assert "make_job" in enclavefl.__all__
    assert "build_job" not in enclavefl.__all__
    assert not hasattr(enclavefl, "build_job")


def test_the_defaults_are_the_cli_defaults_weighted_fedavg_with_k_2(certificates: dict[str, str]) -> None:
    job = enclavefl.make_job(name="trial", initial_model=INITIAL, owners=certificates)

    assert job.strategy.name == "fedavg" and dict(job.strategy.params) == {"weighted": True}
    assert job.min_contributions == 2
    assert job.rounds == 10 and job.train == TrainConfig(local_steps=5, lr=0.1)
    assert [owner.name for owner in job.data_owners] == ["alice", "bob"]
    assert job.initial_model_sha256 == INITIAL.sha256().hex()


def test_every_option_reaches_the_spec(certificates: dict[str, str]) -> None:
    job = enclavefl.make_job(
        name="trial",
        initial_model=INITIAL,
        owners=certificates,
        rounds=3,
        min_contributions=2,
        round_deadline_seconds=60.0,
        strategy="centered_clipping",
        params={"tau": 0.5},
        on_round_failure="stop",
        max_round_attempts=5,
        max_examples_per_update=1000,
    )

    assert (job.rounds, job.round_deadline_seconds, job.on_round_failure) == (3, 60.0, "stop")
    assert job.strategy.name == "centered_clipping" and dict(job.strategy.params) == {"tau": 0.5}
    assert (job.max_round_attempts, job.max_examples_per_update) == (5, 1000)


def test_a_job_without_owners_is_refused() -> None:
    with pytest.raises(ConfigError, match="enroll at least one data owner"):
        enclavefl.make_job(name="trial", initial_model=INITIAL, owners={})


def test_a_rule_that_releases_below_k_is_refused_by_the_enclave_registry(certificates: dict[str, str]) -> None:
    with pytest.raises(ReleaseBelowK):
        enclavefl.make_job(
            name="trial", initial_model=INITIAL, owners=certificates, strategy="krum", params={"byzantine": 0}
        )


def test_job_init_writes_the_job_make_job_builds(certificates: dict[str, str], tmp_path: Path) -> None:
    # prepare: the same inputs, as files for the CLI and as values for the API
    model = tmp_path / "init.safetensors"
    model.write_bytes(encode_weights(INITIAL))
    args = ["job", "init", "--name", "trial", "--model", str(model), "--out", str(tmp_path / "job.toml")]
    for name, pem in certificates.items():
        (tmp_path / f"{name}.pem").write_text(pem)
        args += ["--owner", f"{name}={tmp_path / f'{name}.pem'}"]
    args += ["--rounds", "4", "--strategy", "trimmed_mean", "--param", "beta=0.1", "--min-contributions", "2"]
    model_owner = OwnerCredentials.generate("model-owner").certificate_pem.decode()
    (tmp_path / "model-owner.pem").write_text(model_owner)
    args += ["--model-owner-cert", str(tmp_path / "model-owner.pem")]

    # act
    result = CliRunner().invoke(app, args)
    built = enclavefl.make_job(
        name="trial",
        initial_model=enclavefl.read_initial_model(model),
        owners=certificates,
        model_owner_certificate=model_owner,
        rounds=4,
        strategy="trimmed_mean",
        params={"beta": 0.1},
        min_contributions=2,
    )

    # assert
    assert result.exit_code == 0, result.output
    assert enclavefl.load_job(tmp_path / "job.toml").digest() == built.digest()

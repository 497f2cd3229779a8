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


# Masked mode with DP (issue 22): the owners' Skellam noise is the default, and the builder writes its schedule.
WIDE = ModelWeights({"w": np.zeros(5000, np.float32)})


@pytest.fixture(scope="module")
def three_owners() -> dict[str, str]:
    return {name: OwnerCredentials.generate(name).certificate_pem.decode() for name in ("alice", "bob", "carol")}


def test_a_masked_dp_job_has_the_owners_add_skellam_noise_with_its_schedule(three_owners: dict[str, str]) -> None:
    from enclavefl.owner.site_policy import SitePolicy
    from enclavefl.privacy.epsilon import epsilon_schedule, job_epsilon_schedule, verify_epsilon_schedule
    from enclavefl.tee.verify.policy import AttestationPolicy

    job = enclavefl.make_job(
        name="m", initial_model=WIDE, owners=three_owners, rounds=6, masked=True, dp_noise_multiplier=1.0
    )

    spec = job.secure_aggregation
    assert spec is not None and job.masked and spec.noise == "skellam" and spec.threshold * 2 > spec.degree + 1
    assert job.dp is not None and dict(job.strategy.params) == {"weighted": False}
    assert tuple(job.dp["epsilon_schedule"]) == job_epsilon_schedule(job)  # type: ignore[arg-type]
    # the Skellam accounting costs more than the central Gaussian's for the same noise multiplier
    assert job_epsilon_schedule(job)[-1] > epsilon_schedule(noise_multiplier=1.0, delta=1e-5, rounds=6)[-1]
    verify_epsilon_schedule(job)  # what every owner runs before it attests
    SitePolicy(min_contributions=2).check_job(job, AttestationPolicy.strict())


def test_a_masked_dp_job_calibrated_to_epsilon_stays_within_it(three_owners: dict[str, str]) -> None:
    from enclavefl.privacy.epsilon import job_epsilon_schedule, verify_epsilon_schedule

    job = enclavefl.make_job(name="m", initial_model=WIDE, owners=three_owners, rounds=5, masked=True, dp_epsilon=4.0)

    schedule = job_epsilon_schedule(job)
    verify_epsilon_schedule(job)
    assert len(schedule) == 5 and 3.9 < schedule[-1] <= 4.0  # every round runs, and none beyond the budget


def test_insecure_central_noise_is_named_warned_and_a_different_job(three_owners: dict[str, str]) -> None:
    from enclavefl.privacy.epsilon import epsilon_schedule, verify_epsilon_schedule

    common: dict[str, object] = {"initial_model": WIDE, "owners": three_owners, "rounds": 3, "masked": True}
    skellam = enclavefl.make_job(name="m", dp_noise_multiplier=1.0, **common)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="INSECURE.*noise-free sum"):
        central = enclavefl.make_job(
            name="m",
            dp_noise_multiplier=1.0,
            masked_noise="insecure_central",
            **common,  # type: ignore[arg-type]
        )

    assert central.secure_aggregation is not None and central.secure_aggregation.noise == "insecure_central"
    assert central.digest() != skellam.digest()
    assert central.dp is not None
    assert tuple(central.dp["epsilon_schedule"]) == epsilon_schedule(noise_multiplier=1.0, delta=1e-5, rounds=3)  # type: ignore[arg-type]
    verify_epsilon_schedule(central)


def test_where_skellam_cannot_apply_make_job_refuses_naming_the_parameter(three_owners: dict[str, str]) -> None:
    from enclavefl.errors import UnsafeSecureAggregation

    with pytest.raises(UnsafeSecureAggregation, match="--dp-accountant rdp"):
        enclavefl.make_job(
            name="m", initial_model=WIDE, owners=three_owners, masked=True, dp_noise_multiplier=1.0, dp_accountant="pld"
        )
    with pytest.raises(ConfigError, match="add --masked"):
        enclavefl.make_job(name="m", initial_model=WIDE, owners=three_owners, masked_noise="insecure_central")

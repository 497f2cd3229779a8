"""A data owner's site policy refuses, before anything is sent, every job outside its limits, naming the key,
the job's value and the limit; a job inside every limit is accepted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from dp_tables import dp_job, dp_table

from enclavefl.core.job import JobSpec, StrategySpec, TrainConfig
from enclavefl.errors import ConfigError, SitePolicyRefused
from enclavefl.owner.site_policy import DEFAULT_SITE_POLICY, SitePolicy, certificate_fingerprint, job_epsilon
from enclavefl.privacy.params import DpParams
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.tls import OwnerCredentials

STRICT = AttestationPolicy.strict().allow_mrenclave(bytes(32))
MODEL_OWNER = OwnerCredentials.generate("model-owner").certificate_pem.decode()


def accepted_job() -> JobSpec:
    job = dp_job(rounds=10, owners=4, noise_multiplier=2.0)
    return dataclasses.replace(job, min_contributions=3, model_owner_certificate_pem=MODEL_OWNER)


def site(**limits: object) -> SitePolicy:
    return SitePolicy.from_mapping(dict(limits))


def test_a_job_inside_every_limit_is_accepted() -> None:
    policy = site(
        min_contributions=3,
        require_dp=True,
        max_epsilon=100.0,
        max_delta=1e-5,
        accountants=["rdp"],
        strategies=["fedavg"],
        max_rounds=10,
        max_local_steps=1,
        max_model_bytes=8,
        model_owners=[certificate_fingerprint(MODEL_OWNER)],
        lifetime_epsilon=1000.0,
    )

    policy.check_job(accepted_job(), STRICT)  # raises if not


@pytest.mark.parametrize(
    ("limits", "change", "field"),
    [
        ({"min_contributions": 4}, {}, "min_contributions"),
        ({"require_dp": True}, {"dp": None}, "require_dp"),
        ({"lifetime_epsilon": 10.0}, {"dp": None}, "require_dp"),
        ({"max_epsilon": 0.5}, {}, "max_epsilon"),
        ({"max_delta": 1e-7}, {}, "max_delta"),
        ({"accountants": ["pld"]}, {}, "accountants"),
        ({"strategies": ["fedavgm"]}, {}, "strategies"),
        ({"max_rounds": 9}, {}, "max_rounds"),
        ({"max_local_steps": 0}, {}, "max_local_steps"),
        ({"max_local_epochs": 1}, {"train": TrainConfig(local_epochs=2)}, "max_local_epochs"),
        ({"max_model_bytes": 7}, {}, "max_model_bytes"),
        ({"model_owners": ["00" * 32]}, {}, "model_owners"),
    ],
)
def test_each_limit_refuses_the_job_naming_field_value_and_limit(
    limits: dict[str, object], change: dict[str, object], field: str
) -> None:
    job = dataclasses.replace(accepted_job(), **change)

    with pytest.raises(SitePolicyRefused) as refused:
        site(**limits).check_job(job, STRICT)

    assert refused.value.field == field
    assert str(refused.value).startswith(f"site policy {field}: the job has ")
    assert "the site policy allows" in str(refused.value)


def test_a_simulated_enclave_is_refused_unless_the_site_policy_allows_it() -> None:
    simulating = dataclasses.replace(STRICT, simulation_root_ca_der=b"a root CA")  # only whether it is set matters

    with pytest.raises(SitePolicyRefused, match="allow_simulated_enclave"):
        site().check_job(accepted_job(), simulating)
    site(allow_simulated_enclave=True).check_job(accepted_job(), simulating)


def test_job_epsilon_is_the_last_round_within_the_jobs_own_budget() -> None:
    table = dp_table(10, noise_multiplier=2.0)
    schedule = table["epsilon_schedule"]
    assert isinstance(schedule, list)
    capped = DpParams.from_mapping({**table, "epsilon_budget": (schedule[3] + schedule[4]) / 2})

    assert job_epsilon(DpParams.from_mapping(table)) == schedule[-1]
    assert job_epsilon(capped) == schedule[3]


def test_the_default_file_parses_and_sets_conservative_limits(tmp_path: Path) -> None:
    path = tmp_path / "site-policy.toml"
    path.write_text(DEFAULT_SITE_POLICY)

    policy = SitePolicy.load(path)

    assert policy.min_contributions == 3 and policy.require_dp and not policy.allow_simulated_enclave
    assert policy.lifetime_epsilon == 20.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_k = 3\n", "unknown key"),
        ("require_dp = 1\n", "require_dp must be true or false"),
        ("max_epsilon = -1.0\n", "max_epsilon must be a positive number"),
        ("strategies = 'fedavg'\n", "strategies must be a list of strings"),
        ("accountants = ['moments']\n", "accountants are 'rdp' or 'pld'"),
        ("max_rounds = \n", "Invalid value"),
    ],
)
def test_a_malformed_site_policy_is_refused_with_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "site-policy.toml"
    path.write_text(text)

    with pytest.raises(ConfigError, match=message):
        SitePolicy.load(path)


def test_default_strategies_are_any_the_job_validator_allows() -> None:
    job = dataclasses.replace(accepted_job(), strategy=StrategySpec(name="fedavgm", params={}), dp=None)

    site().check_job(job, STRICT)  # no strategies listed: the validator (in the enclave and at job init) decides

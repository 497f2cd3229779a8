"""A data owner's site policy refuses, before anything is sent, every job outside its limits, naming the key,
the job's value and the limit; a job inside every limit is accepted."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
from dp_tables import dp_job, dp_table

import enclavefl.core.job
from enclavefl.core.job import BaseModelSpec, DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.errors import ConfigError, SitePolicyRefused
from enclavefl.owner.site_limits import BOUNDED_BY, REVIEWED_UNBOUNDED, schema_digest
from enclavefl.owner.site_policy import DEFAULT_SITE_POLICY, SitePolicy, certificate_fingerprint, job_epsilon
from enclavefl.privacy.params import DpParams
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

STRICT = AttestationPolicy.strict().allow_mrenclave(bytes(32))
MODEL_OWNER = OwnerCredentials.generate("model-owner").certificate_pem.decode()
OWNER_CERTS = tuple(OwnerCredentials.generate(f"owner{i}").certificate_pem.decode() for i in range(4))
SYBIL = OwnerCredentials.generate("sybil").certificate_pem.decode()
MASKED = SecureAggregationSpec(degree=2, threshold=2, clip_norm=1.0)


def accepted_job() -> JobSpec:
    job = dp_job(rounds=10, owners=4, noise_multiplier=2.0)
    owners = tuple(DataOwnerSpec(name=o.name, certificate_pem=c) for o, c in zip(job.data_owners, OWNER_CERTS))
    return dataclasses.replace(
        job,
        min_contributions=3,
        model_owner_certificate_pem=MODEL_OWNER,
        data_owners=owners,
        train=TrainConfig(local_steps=1, batch_size=32),
    )


def with_sybil(job: JobSpec) -> JobSpec:
    return dataclasses.replace(job, data_owners=(*job.data_owners[:3], DataOwnerSpec(name="s", certificate_pem=SYBIL)))


def fedavgm(server_lr: float, **more: float) -> StrategySpec:
    return StrategySpec(name="fedavgm", params={"server_lr": server_lr, **more})


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
        max_round_attempts=3,
        co_owners=[certificate_fingerprint(c) for c in OWNER_CERTS],
        min_distinct_owners=4,
        min_batch_size=32,
        max_strategy_params={"server_lr": 1.0},
        model_schemas=[schema_digest(accepted_job().model_schema)],  # type: ignore[arg-type]
        initial_models=["00" * 32],
        min_secagg_threshold=2,
        max_secagg_clip_norm=1.0,
        min_clients_per_round=3,
        max_fraction_per_round=1.0,
    )

    policy.check_job(accepted_job(), STRICT)  # raises if not
    policy.check_job(dataclasses.replace(accepted_job(), clients_per_round=3), STRICT)
    policy.check_job(dataclasses.replace(accepted_job(), on_round_failure="stop"), STRICT)


REFUSALS: list[tuple[dict[str, object], dict[str, object] | str, str]] = [
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
    ({"max_round_attempts": 2}, {}, "max_round_attempts"),
    ({"max_round_attempts": 3}, {"max_round_attempts": 4}, "max_round_attempts"),
    ({"co_owners": [certificate_fingerprint(c) for c in OWNER_CERTS]}, "sybil", "co_owners"),
    ({"min_distinct_owners": 5}, {}, "min_distinct_owners"),
    ({"min_batch_size": 64}, {}, "min_batch_size"),
    ({"max_strategy_params": {"server_lr": 1.0}}, {"strategy": fedavgm(2.0)}, "max_strategy_params"),
    ({"max_strategy_params": {"server_lr": 1.0}}, {"strategy": fedavgm(0.5, momentum=0.9)}, "max_strategy_params"),
    ({"model_schemas": ["00" * 32]}, {}, "model_schemas"),
    ({"initial_models": ["11" * 32]}, {}, "initial_models"),
    ({"base_models": ["22" * 32]}, {"base_model": BaseModelSpec(name="b", sha256="33" * 32)}, "base_models"),
    ({"require_secure_aggregation": True}, {}, "require_secure_aggregation"),
    ({"min_secagg_threshold": 3}, {"secure_aggregation": MASKED, "dp": None}, "min_secagg_threshold"),
    (
        {"max_secagg_clip_norm": 0.5},
        {"secure_aggregation": MASKED, "dp": None},
        "max_secagg_clip_norm",
    ),
    (  # a masked DP job whose enclave adds the noise after unmasking: refused unless the site opts in
        {},
        {"secure_aggregation": dataclasses.replace(MASKED, noise="insecure_central")},
        "allow_insecure_central_noise",
    ),
    ({"min_clients_per_round": 4}, {"clients_per_round": 3}, "min_clients_per_round"),
    ({"min_clients_per_round": 4}, {"fraction_per_round": 0.5, "min_contributions": 2}, "min_clients_per_round"),
    ({"max_fraction_per_round": 0.5}, {"fraction_per_round": 0.75}, "max_fraction_per_round"),
    ({"max_fraction_per_round": 0.5}, {}, "max_fraction_per_round"),  # no cohort: every owner, every round
]


@pytest.mark.parametrize(("limits", "change", "field"), REFUSALS)
def test_each_limit_refuses_the_job_naming_field_value_and_limit(
    limits: dict[str, object], change: dict[str, object] | str, field: str
) -> None:
    job = with_sybil(accepted_job()) if change == "sybil" else dataclasses.replace(accepted_job(), **change)

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
        ("[max_strategy_params]\nserver_lr = 'big'\n", "max_strategy_params must be a table"),
        ("co_owners = 'ab'\n", "co_owners must be a list of strings"),
        ("max_fraction_per_round = 1.5\n", "max_fraction_per_round must lie in"),
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


WHOLE = ("data_owners", "model_schema")  # bounded as a whole: each owner's certificate, the schema's digest


def job_fields(cls: type, prefix: str = "") -> list[str]:
    """Every field of the job, nested sections (dataclasses) as dotted paths, the sections themselves included."""
    out: list[str] = []
    # The job's values are defined in core/job.py; a public class shows `enclavefl` as its __module__ once loaded
    # through `enclavefl.X`, so its string annotations resolve in the defining module's namespace, named here.
    # (SecureAggregationSpec is imported there only for type checking: core/optional_checks.py loads it on use.)
    hints = typing.get_type_hints(
        cls, globalns={**vars(enclavefl.core.job), "SecureAggregationSpec": SecureAggregationSpec}
    )
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        out.append(path)
        nested = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if dataclasses.is_dataclass(t)]
        if nested and path not in WHOLE:
            out += job_fields(nested[0], prefix=f"{path}.")
    return out


def test_every_job_field_is_bounded_by_the_site_policy_or_reviewed() -> None:
    """Issue 22 item 4: nothing leaves a site that its policy did not bound. A new job field fails here until it is
    bounded (owner/site_limits.py BOUNDED_BY, with a refusal case above) or argued for in REVIEWED_UNBOUNDED."""
    fields = job_fields(JobSpec)
    site_keys = {f.name for f in dataclasses.fields(SitePolicy)}
    refused_keys = {field for _, _, field in REFUSALS}

    unclassified = [f for f in fields if f not in BOUNDED_BY and f not in REVIEWED_UNBOUNDED]
    stale = sorted((set(BOUNDED_BY) | set(REVIEWED_UNBOUNDED)) - set(fields))
    both = sorted(set(BOUNDED_BY) & set(REVIEWED_UNBOUNDED))
    unknown_keys = sorted({k for keys in BOUNDED_BY.values() for k in keys} - site_keys)
    untested_keys = sorted({k for keys in BOUNDED_BY.values() for k in keys} - refused_keys)

    assert "train.batch_size" in fields and "secure_aggregation.threshold" in fields  # the walk goes into sections
    assert unclassified == [], f"job fields neither bounded by the site policy nor reviewed: {unclassified}"
    assert stale == [] and both == [] and unknown_keys == []
    assert untested_keys == [], f"site-policy keys with no refusal case in REFUSALS: {untested_keys}"
    assert all(BOUNDED_BY.values()) and len(REVIEWED_UNBOUNDED) <= 17  # short (17th: evaluate_every, an opt-in)


def test_an_owner_refuses_noise_added_after_unmasking_unless_its_site_opts_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22: a masked DP job with noise = "insecure_central" leaves the enclave a noise-free sum; an owner with
    default flags (no site policy) or a site policy that does not opt in refuses it before anything is sent."""
    from enclavefl.api.jobs import with_mechanism_schedule
    from enclavefl.owner.data_owner_main import DataOwnerSetup, admit_job

    central = dataclasses.replace(
        accepted_job(), secure_aggregation=dataclasses.replace(MASKED, noise="insecure_central")
    )

    def setup(policy: SitePolicy | None) -> DataOwnerSetup:
        return DataOwnerSetup(
            address="127.0.0.1:1",
            name=central.data_owners[0].name,
            job=central,
            policy=STRICT,
            credentials=OwnerCredentials.generate("alice"),
            state_dir=None,
            site_policy=policy,
        )

    for policy in (None, site()):
        with pytest.raises(SitePolicyRefused, match="allow_insecure_central_noise"):
            admit_job(setup(policy))
    with caplog.at_level("WARNING", logger="enclavefl.owner.site_limits"):  # whatever level other tests left
        admit_job(setup(site(allow_insecure_central_noise=True)))
    assert "INSECURE" in caplog.text and "noise-free sum" in caplog.text
    skellam = with_mechanism_schedule(dataclasses.replace(accepted_job(), secure_aggregation=MASKED))
    admit_job(dataclasses.replace(setup(None), job=skellam))  # the default, owners' noise: accepted without a policy


def test_what_an_owner_reads_before_joining_says_where_the_noise_is_added() -> None:
    from enclavefl.owner.consent import masked_section

    central = dataclasses.replace(
        accepted_job(), secure_aggregation=dataclasses.replace(MASKED, noise="insecure_central")
    )
    skellam = dataclasses.replace(accepted_job(), secure_aggregation=MASKED)
    without_dp = dataclasses.replace(skellam, dp=None)

    rows = {s: {r.key: r.value for r in masked_section(j).rows} for s, j in (("c", central), ("s", skellam))}
    assert rows["c"]["noise"] == "insecure_central" and rows["s"]["noise"] == "skellam"
    assert masked_section(central).note.startswith("INSECURE") and "noised" in masked_section(skellam).note
    assert "noise" not in {r.key for r in masked_section(without_dp).rows}

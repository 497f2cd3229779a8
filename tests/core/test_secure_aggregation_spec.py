"""The [secure_aggregation] section: in the digest, round-trips through job files, and unsafe values are refused."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.jobfile import job_from_mapping
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.errors import JobSpecError, UnsafeSecureAggregation
from enclavefl.transport.owner_tls import OwnerCredentials

OWNERS = tuple(DataOwnerSpec(name=f"o{i}") for i in range(20))


def job(spec: SecureAggregationSpec | None, *, owners: int = 20, strategy: str = "fedavg", **params: object) -> JobSpec:
    return JobSpec(
        name="masked",
        rounds=2,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name=strategy, params=params or {"weighted": False}),
        min_contributions=2,
        data_owners=OWNERS[:owners],
        secure_aggregation=spec,
    )


def test_the_section_is_part_of_the_digest() -> None:
    plain = job(None)
    masked = job(SecureAggregationSpec(degree=4, threshold=3))
    other = job(SecureAggregationSpec(degree=4, threshold=4))
    assert len({plain.digest(), masked.digest(), other.digest()}) == 3
    assert not plain.masked and masked.masked


def test_the_section_round_trips_through_a_job_file() -> None:
    spec = SecureAggregationSpec(degree=6, threshold=4, scale=1024.0, modulus_bits=32, clip_norm=2.0)
    written = job(spec)
    raw = tomllib.loads(dump_job(written))
    assert SecureAggregationSpec.from_mapping(raw["secure_aggregation"]) == written.secure_aggregation
    assert written.secure_aggregation == dataclasses.replace(spec, noise=None)  # no [dp]: no noise to place


def test_unknown_keys_are_refused() -> None:
    raw = {"name": "j", "rounds": 1, "train": {"local_steps": 1}, "secure_aggregation": {"degre": 4}}
    with pytest.raises(JobSpecError, match="unknown key"):
        job_from_mapping(raw, base_dir=Path("."))


@pytest.mark.parametrize(
    ("spec", "owners", "reason"),
    [
        (SecureAggregationSpec(degree=8, threshold=4), 20, "too low for degree 8"),
        (SecureAggregationSpec(degree=8, threshold=10), 20, "no seed could ever be rebuilt"),
        (SecureAggregationSpec(degree=4, threshold=3), 2, "no seed could ever be rebuilt"),
        (SecureAggregationSpec(degree=3, threshold=3), 20, "even number"),
        (SecureAggregationSpec(degree=4, threshold=3), 0, "at least 2"),
        (SecureAggregationSpec(degree=4, threshold=3, modulus_bits=32, scale=2.0**24, clip_norm=10.0), 20, "wrap"),
        (SecureAggregationSpec(degree=4, threshold=3, modulus_bits=48), 20, "32 or 64"),
    ],
)
def test_unsafe_parameters_are_refused_with_the_reason(spec: SecureAggregationSpec, owners: int, reason: str) -> None:
    with pytest.raises(UnsafeSecureAggregation, match=reason):
        job(spec, owners=owners)


def test_what_masked_mode_gives_up_is_refused() -> None:
    spec = SecureAggregationSpec(degree=4, threshold=3)
    with pytest.raises(UnsafeSecureAggregation, match="robust rules"):
        job(spec, strategy="centered_clipping", tau=1.0)
    with pytest.raises(UnsafeSecureAggregation, match="weighted = false"):
        job(spec, weighted=True)
    dp = {"clip_norm": 0.5, "noise_multiplier": 1.0, "delta": 1e-5}
    with pytest.raises(UnsafeSecureAggregation, match="per-update server-side clipping"):
        JobSpec(
            name="m",
            rounds=1,
            train=TrainConfig(local_steps=1),
            min_contributions=2,
            data_owners=OWNERS,
            strategy=StrategySpec(name="fedavg", params={"weighted": False}),
            dp=dp,
            secure_aggregation=SecureAggregationSpec(degree=4, threshold=3, clip_norm=1.0),
        )


def test_a_disabled_section_is_not_checked_and_not_masked() -> None:
    spec = SecureAggregationSpec(enabled=False, degree=3, threshold=1)
    assert not job(spec).masked


OLD_MASKED_DP_JOB = """
name = "written-before-skellam-was-the-default"
rounds = 2
min_contributions = 2
dp = {"clip_norm" = 1.0, "noise_multiplier" = 1.0, "delta" = 1e-05, "epsilon_schedule" = [5.0, 7.5]}

[train]
local_steps = 1

[strategy]
name = "fedavg"
params = {"weighted" = false}

[secure_aggregation]
enabled = true
degree = 2
threshold = 2
scale = 65536.0
modulus_bits = 64
clip_norm = 1.0
"""


def test_a_masked_dp_job_file_of_the_old_meaning_is_refused_with_what_to_write() -> None:
    # The old code read a masked DP job without `noise` as central noise after unmasking, and left the field out of
    # its digest; read as Skellam it would silently change meaning, so it is refused in one line.
    raw = tomllib.loads(OLD_MASKED_DP_JOB)
    raw["data_owners"] = [
        {"name": n, "certificate": OwnerCredentials.generate(n).certificate_pem.decode()} for n in ("a", "b", "c")
    ]
    with pytest.raises(JobSpecError) as refused:
        job_from_mapping(raw, base_dir=Path("."))
    message = str(refused.value)
    assert "\n" not in message and 'noise = "skellam"' in message and 'noise = "insecure_central"' in message
    raw["secure_aggregation"]["noise"] = "central"  # the old name, written out by hand
    with pytest.raises(JobSpecError, match='write noise = "insecure_central"'):
        job_from_mapping(raw, base_dir=Path("."))
    raw["secure_aggregation"]["noise"] = "insecure_central"  # what the message says to write: accepted
    written = job_from_mapping(raw, base_dir=Path("."))
    assert written.secure_aggregation is not None and written.secure_aggregation.insecure_central_noise

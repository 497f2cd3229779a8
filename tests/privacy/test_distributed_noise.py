"""Distributed Skellam noise (masked DP jobs): the sampler's law, and the epsilon schedule an owner accepts."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from dp_tables import dp_table

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.weights import ModelSchema, TensorSpec
from enclavefl.errors import EpsilonScheduleMismatch, JobSpecError, UnsafeSecureAggregation
from enclavefl.privacy.distributed import (
    SkellamSource,
    add_owner_noise_inplace,
    owner_variance,
    rounded_sensitivity,
    skellam_accounted_multiplier,
)
from enclavefl.privacy.epsilon import (
    accounted_noise_multiplier,
    epsilon_schedule,
    job_epsilon_schedule,
    verify_epsilon_schedule,
)

SKELLAM = SecureAggregationSpec(degree=2, threshold=2, scale=float(1 << 16), clip_norm=1.0, noise="skellam")
DIMENSION = 50_000


def skellam_job(*, rounds: int = 5, noise_multiplier: float = 1.0, spec: SecureAggregationSpec = SKELLAM) -> JobSpec:
    """A masked DP job with distributed noise; its dp table first holds the central (Gaussian) schedule."""
    return JobSpec(
        name="skellam",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=2,
        data_owners=tuple(DataOwnerSpec(name=f"owner{i}") for i in range(3)),
        model_schema=ModelSchema(tensors=(TensorSpec(name="w", shape=(DIMENSION,), dtype="float32"),)),
        initial_model_sha256="00" * 32,
        secure_aggregation=spec,
        dp=dp_table(rounds, noise_multiplier=noise_multiplier),
    )


def with_schedule(job: JobSpec, schedule: tuple[float, ...]) -> JobSpec:
    assert job.dp is not None
    return dataclasses.replace(job, dp={**job.dp, "epsilon_schedule": list(schedule)})


@pytest.mark.parametrize("lam", [10.0, 250.0, 4.0e9])
def test_skellam_variates_have_mean_zero_and_variance_two_lambda(lam: float) -> None:
    draws = SkellamSource(key=bytes(range(32))).skellam(lam, 200_000).astype(np.float64)
    # the sample variance of 200k draws is within 1.5% of the truth with overwhelming probability; 2x is far out
    assert 0.95 < draws.var() / (2 * lam) < 1.05
    assert abs(draws.mean()) < 6 * math.sqrt(2 * lam / draws.size)


def test_the_sum_of_k_owners_shares_has_the_jobs_noise_in_ring_units() -> None:
    sigma, clip, scale, k = 0.7, 1.0, float(1 << 16), 4
    variance = owner_variance(noise_multiplier=sigma, dp_clip=clip, scale=scale, min_contributors=k)
    total = np.zeros(100_000, dtype=np.uint64)
    for owner in range(k):  # each owner noises its (here zero) encoding in the ring, with its own key
        encoded = np.zeros(total.size, dtype=np.uint64)
        add_owner_noise_inplace(encoded, source=SkellamSource(key=bytes([owner]) * 32), variance=variance)
        total += encoded
    real = total.view(np.int64).astype(np.float64) / scale  # what the enclave decodes
    assert 0.95 < real.var() / (sigma * clip) ** 2 < 1.05


def test_32_bit_rings_wrap_the_noise_like_the_masks() -> None:
    encoded = np.full(10_000, 5, dtype=np.uint32)
    add_owner_noise_inplace(encoded, source=SkellamSource(key=bytes(32)), variance=200.0)
    signed = encoded.view(np.int32).astype(np.float64) - 5
    assert (signed < 0).any() and 0.9 < signed.var() / 200.0 < 1.1


def test_the_accounted_multiplier_charges_the_rounding_and_the_skellam_term() -> None:
    l2, l1 = rounded_sensitivity(clip=1.0, scale=1 << 16, dimension=DIMENSION)
    assert l2 == pytest.approx(65536 + math.sqrt(DIMENSION) / 2)
    assert l1 == pytest.approx(math.sqrt(DIMENSION) * l2)
    accounted = skellam_accounted_multiplier(
        noise_multiplier=1.0, dp_clip=1.0, clip=1.0, scale=1 << 16, dimension=DIMENSION
    )
    assert accounted == pytest.approx(65536 / math.sqrt(l2 * l2 + 3 * l1))
    assert 0.99 < accounted < 1.0  # below the nominal multiplier: the job pays for rounding and discreteness
    coarse = skellam_accounted_multiplier(noise_multiplier=1.0, dp_clip=1.0, clip=1.0, scale=64, dimension=DIMENSION)
    assert coarse < 0.5  # a coarse scale makes rounding dominate, and the schedule says so


def test_a_skellam_jobs_schedule_is_higher_than_the_central_one_and_an_owner_refuses_the_central_one() -> None:
    job = skellam_job()
    assert accounted_noise_multiplier(job) < 1.0
    honest = job_epsilon_schedule(job)
    central = epsilon_schedule(noise_multiplier=1.0, delta=1e-5, rounds=job.rounds)
    assert all(h > c for h, c in zip(honest, central, strict=True))
    with pytest.raises(EpsilonScheduleMismatch, match="distributed Skellam"):
        verify_epsilon_schedule(job)  # the central schedule understates the distributed mechanism
    verify_epsilon_schedule(with_schedule(job, honest))  # the owner accepts the honest one
    central_job = dataclasses.replace(job, secure_aggregation=dataclasses.replace(SKELLAM, noise="central"))
    verify_epsilon_schedule(central_job)  # and the same table is right for central noise


def test_skellam_noise_needs_dp_rdp_and_a_fine_enough_scale() -> None:
    with pytest.raises(UnsafeSecureAggregation, match="no \\[dp\\] table"):
        dataclasses.replace(skellam_job(), dp=None)
    with pytest.raises(UnsafeSecureAggregation, match="rdp"):
        dataclasses.replace(skellam_job(), dp=dp_table(5, accountant="pld"))
    with pytest.raises(UnsafeSecureAggregation, match="Poisson rate"):
        skellam_job(spec=dataclasses.replace(SKELLAM, scale=4.0))
    with pytest.raises(JobSpecError, match="'central' or 'skellam'"):
        SecureAggregationSpec.from_mapping({"noise": "gaussian"})


def test_the_noise_field_is_in_the_digest_only_when_distributed() -> None:
    central = dataclasses.replace(SKELLAM, noise="central")
    assert "noise" not in central.to_canonical()  # jobs written before the field keep their digest
    assert SKELLAM.to_canonical()["noise"] == "skellam"
    assert SecureAggregationSpec.from_mapping(SKELLAM.to_canonical()) == SKELLAM
    job = skellam_job()
    assert job.digest() != dataclasses.replace(job, secure_aggregation=central).digest()

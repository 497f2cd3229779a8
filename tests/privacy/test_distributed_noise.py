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


def test_where_skellam_cannot_apply_the_job_is_refused_naming_the_parameter_never_made_central() -> None:
    # a PLD accountant: Skellam is accounted through its RDP bound
    with pytest.raises(UnsafeSecureAggregation, match=r"set dp\.accountant = 'rdp'"):
        dataclasses.replace(skellam_job(), dp=dp_table(5, accountant="pld"))
    # an owner's Poisson rate below 10: the sampler's domain
    with pytest.raises(UnsafeSecureAggregation, match=r"Poisson rate .* raise secure_aggregation\.scale"):
        skellam_job(spec=dataclasses.replace(SKELLAM, scale=4.0))
    # the noise could wrap the ring although the clipped updates alone would not
    wraps = dataclasses.replace(SKELLAM, scale=float(1 << 25), modulus_bits=32)
    skellam_job(spec=dataclasses.replace(wraps, noise="insecure_central"))  # fits without the owners' noise
    with pytest.raises(UnsafeSecureAggregation, match="modulus_bits = 64"):
        skellam_job(spec=wraps)
    # the default (no noise named) is Skellam, so the default job is refused the same way: no silent central noise
    with pytest.raises(UnsafeSecureAggregation, match=r"dp\.accountant"):
        dataclasses.replace(
            skellam_job(),
            secure_aggregation=SecureAggregationSpec(degree=2, threshold=2),
            dp=dp_table(5, accountant="pld"),
        )
    with pytest.raises(JobSpecError, match="'skellam' or 'insecure_central'"):
        SecureAggregationSpec.from_mapping({"noise": "gaussian"})


def test_without_dp_the_noise_field_has_no_effect_and_stays_out_of_the_digest() -> None:
    plain = dataclasses.replace(skellam_job(), dp=None)
    assert plain.secure_aggregation is not None and plain.secure_aggregation.noise is None
    assert "noise" not in plain.to_canonical()["secure_aggregation"]  # digests of masked jobs without DP hold
    central = dataclasses.replace(SKELLAM, noise="insecure_central")
    assert dataclasses.replace(plain, secure_aggregation=central).digest() == plain.digest()


def test_the_digest_names_the_noise_mechanism_and_the_old_central_form_cannot_be_built() -> None:
    skellam = skellam_job()
    central = dataclasses.replace(skellam, secure_aggregation=dataclasses.replace(SKELLAM, noise="insecure_central"))
    assert skellam.to_canonical()["secure_aggregation"]["noise"] == "skellam"  # type: ignore[index]
    assert central.to_canonical()["secure_aggregation"]["noise"] == "insecure_central"  # type: ignore[index]
    assert skellam.digest() != central.digest()
    assert SecureAggregationSpec.from_mapping(SKELLAM.to_canonical()) == SKELLAM
    assert SecureAggregationSpec(degree=2, threshold=2).noise == "skellam"  # the default
    # the old code's central job left `noise` out of its digest; a masked DP job without it is refused
    with pytest.raises(JobSpecError, match="missing in a masked job with \\[dp\\]"):
        dataclasses.replace(skellam, secure_aggregation=dataclasses.replace(SKELLAM, noise=None))

"""Epsilon with dp-accounting, on the side of whoever writes or joins a job (never inside the enclave).

    dp = dp_params(clip_norm=1.0, noise_multiplier=1.1, delta=1e-5, rounds=30)   # JobSpec.dp = dp.to_mapping()
    verify_epsilon_schedule(job)        # a data owner, before it attests: raises EpsilonScheduleMismatch

Every enrolled data owner takes part in every round (no sampling, so no amplification is claimed): round r
is one Gaussian mechanism with noise multiplier sigma on the sum of clipped deltas, and r rounds are that
mechanism self-composed r times. The neighbouring relation is "zero-out": one owner's clipped delta replaced
by zero (Kairouz et al. 2021). For the Gaussian mechanism it compares the same two distributions as
add/remove-one, N(0, (sigma C)^2) against N(C, (sigma C)^2), which is how dp-accounting is asked.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from enclavefl.core.job import JobSpec
from enclavefl.errors import EpsilonScheduleMismatch, JobSpecError, PrivacyError
from enclavefl.privacy.params import AccountantName, DpParams

if TYPE_CHECKING:  # dp-accounting (and the scipy it pulls) costs ~0.5 s: imported by the functions that compute
    import dp_accounting

# A job may state more epsilon than computed (conservative), never less; this absorbs float noise between
# dp-accounting versions, not a real difference.
SCHEDULE_TOLERANCE = 1e-9


def make_accountant(name: AccountantName) -> dp_accounting.PrivacyAccountant:
    """A fresh dp-accounting accountant (RDP: fast and standard; PLD: tighter, slower)."""
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    if name == "pld":
        return pld_privacy_accountant.PLDAccountant()
    return rdp_privacy_accountant.RdpAccountant()


def round_event(noise_multiplier: float, rounds: int) -> dp_accounting.DpEvent:
    """The DP event of `rounds` full-participation rounds."""
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)


@functools.lru_cache(maxsize=4096)
def epsilon_after(*, noise_multiplier: float, delta: float, accountant: AccountantName, rounds: int) -> float:
    """Epsilon at `delta` after `rounds` full-participation rounds (0 for no round)."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if rounds == 0:
        return 0.0
    ledger = make_accountant(accountant)
    ledger.compose(round_event(noise_multiplier, rounds))
    return float(ledger.get_epsilon(delta))


def epsilon_schedule(
    *, noise_multiplier: float, delta: float, rounds: int, accountant: AccountantName = "rdp"
) -> tuple[float, ...]:
    """Epsilon after each of rounds 1..`rounds`."""
    return tuple(
        epsilon_after(noise_multiplier=noise_multiplier, delta=delta, accountant=accountant, rounds=r)
        for r in range(1, rounds + 1)
    )


def dp_params(
    *,
    clip_norm: float,
    noise_multiplier: float,
    delta: float,
    rounds: int,
    epsilon_budget: float | None = None,
    accountant: AccountantName = "rdp",
) -> DpParams:
    """DP parameters for a job of `rounds` rounds, with the epsilon schedule computed here."""
    return DpParams(
        clip_norm=clip_norm,
        noise_multiplier=noise_multiplier,
        delta=delta,
        epsilon_schedule=epsilon_schedule(
            noise_multiplier=noise_multiplier, delta=delta, rounds=rounds, accountant=accountant
        ),
        epsilon_budget=epsilon_budget,
        accountant=accountant,
    )


def verify_epsilon_schedule(job: JobSpec) -> None:
    """Recompute the job's epsilon schedule; raise unless it covers every round and understates none.

    The enclave reports and enforces the schedule the job states, so a data owner runs this before it attests:
    a job that claims less epsilon than its parameters spend is refused before anything is sent.
    """
    if job.dp is None:
        return
    params = DpParams.from_mapping(job.dp)
    sigma = accounted_noise_multiplier(job)
    if len(params.epsilon_schedule) != job.rounds:
        raise JobSpecError(
            f"dp.epsilon_schedule has {len(params.epsilon_schedule)} entries for a job of {job.rounds} rounds"
        )
    computed = epsilon_schedule(
        noise_multiplier=sigma, delta=params.delta, rounds=job.rounds, accountant=params.accountant
    )
    for round_index, (stated, actual) in enumerate(zip(params.epsilon_schedule, computed, strict=True), start=1):
        if stated < actual * (1 - SCHEDULE_TOLERANCE):
            raise EpsilonScheduleMismatch(
                f"the job states epsilon {stated:.6g} after round {round_index}, but {params.accountant.upper()} "
                f"accounting of noise_multiplier={params.noise_multiplier:g}{_mechanism_note(job, sigma)} at "
                f"delta={params.delta:g} gives "
                f"{actual:.6g}: the job understates its privacy cost"
            )


def accounted_noise_multiplier(job: JobSpec) -> float:
    """The Gaussian noise multiplier the job's rounds are accounted with: dp.noise_multiplier for central noise;
    for a masked job with distributed Skellam noise, the smaller multiplier that bounds its RDP (privacy/distributed.py:
    the rounding's sensitivity growth and the Skellam's extra term, with only K owners' noise counted)."""
    if job.dp is None:
        raise PrivacyError(f"job {job.name!r} has no [dp] table")
    params = DpParams.from_mapping(job.dp)
    spec = job.secure_aggregation
    if spec is None or not spec.enabled or not spec.distributed_noise:
        return params.noise_multiplier
    if job.model_schema is None:
        raise JobSpecError("secure_aggregation.noise = 'skellam' needs the job's model_schema (its dimension)")
    if params.accountant != "rdp":
        raise JobSpecError("secure_aggregation.noise = 'skellam' is accounted with RDP: set dp.accountant = 'rdp'")
    from enclavefl.privacy.distributed import skellam_accounted_multiplier

    return skellam_accounted_multiplier(
        noise_multiplier=params.noise_multiplier,
        dp_clip=params.clip_norm,
        clip=spec.clip_norm,
        scale=spec.scale,
        dimension=sum(t.numel for t in job.model_schema.tensors),
    )


def job_epsilon_schedule(job: JobSpec) -> tuple[float, ...]:
    """The epsilon schedule `job`'s dp table must state (at least), for its mechanism: write it into dp."""
    if job.dp is None:
        raise PrivacyError(f"job {job.name!r} has no [dp] table")
    params = DpParams.from_mapping(job.dp)
    return epsilon_schedule(
        noise_multiplier=accounted_noise_multiplier(job),
        delta=params.delta,
        rounds=job.rounds,
        accountant=params.accountant,
    )


def _mechanism_note(job: JobSpec, sigma: float) -> str:
    spec = job.secure_aggregation
    if spec is None or not spec.distributed_noise:
        return ""
    return f" (distributed Skellam, accounted as a Gaussian of multiplier {sigma:.6g})"


def calibrate_noise_multiplier(
    *, target_epsilon: float, delta: float, rounds: int, accountant: AccountantName = "rdp"
) -> float:
    """The smallest noise multiplier (to 1e-3) whose `rounds` rounds stay within `target_epsilon` at `delta`."""
    if not (target_epsilon > 0 and 0 < delta < 1 and rounds >= 1):
        raise PrivacyError("calibration needs target_epsilon > 0, 0 < delta < 1 and rounds >= 1")
    import dp_accounting

    sigma = dp_accounting.calibrate_dp_mechanism(
        lambda: make_accountant(accountant),
        lambda s: round_event(s, rounds),
        target_epsilon,
        delta,
        dp_accounting.LowerEndpointAndGuess(0.05, 1.0),
        tol=1e-3,
    )
    return float(sigma)

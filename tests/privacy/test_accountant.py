"""Epsilon equals dp-accounting's own computation; the enclave's ledger reads the job's schedule and stops the job
before the budget is exceeded; a job that understates its schedule is refused by the parties that check it."""

from __future__ import annotations

import dataclasses

import pytest
from dp_accounting import GaussianDpEvent
from dp_accounting.pld.pld_privacy_accountant import PLDAccountant
from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant
from dp_tables import dp_job

from enclavefl.core.job import JobSpec
from enclavefl.errors import EpsilonScheduleMismatch, JobSpecError, PrivacyBudgetExceeded, PrivacyError
from enclavefl.privacy import DpParams, PrivacyAccountant
from enclavefl.privacy.epsilon import calibrate_noise_multiplier, dp_params, verify_epsilon_schedule

BASE: dict[str, object] = {"clip_norm": 1.0, "noise_multiplier": 1.1, "delta": 1e-5, "epsilon_schedule": [0.5, 0.9]}


def params(**kw: object) -> DpParams:
    return DpParams.from_mapping(BASE | kw)


@pytest.mark.parametrize("rounds", [1, 7, 30])
@pytest.mark.parametrize("sigma", [0.8, 3.49])
def test_scheduled_epsilon_equals_dp_accounting_rdp(rounds: int, sigma: float) -> None:
    reference = RdpAccountant()
    for _ in range(rounds):  # composed event by event, unlike the code under test
        reference.compose(GaussianDpEvent(sigma))

    schedule = dp_params(clip_norm=1.0, noise_multiplier=sigma, delta=1e-5, rounds=rounds).epsilon_schedule

    assert len(schedule) == rounds
    assert schedule[-1] == pytest.approx(reference.get_epsilon(1e-5), rel=1e-12)


def test_scheduled_epsilon_equals_dp_accounting_pld() -> None:
    reference = PLDAccountant()
    reference.compose(GaussianDpEvent(2.0), 5)

    p = dp_params(clip_norm=1.0, noise_multiplier=2.0, delta=1e-5, rounds=5, accountant="pld")

    assert p.epsilon_schedule[-1] == pytest.approx(reference.get_epsilon(1e-5), rel=1e-9)


def test_ledger_reports_the_schedule_after_each_recorded_round() -> None:
    p = dp_params(clip_norm=1.0, noise_multiplier=1.1, delta=1e-5, rounds=3)
    accountant = PrivacyAccountant(p)

    spent = [accountant.record_round() for _ in range(3)]

    assert [s.rounds for s in spent] == [1, 2, 3]
    assert [s.epsilon for s in spent] == list(p.epsilon_schedule)
    assert spent[0].epsilon < spent[1].epsilon < spent[2].epsilon
    with pytest.raises(PrivacyError, match="past the job's epsilon schedule"):
        accountant.record_round()


def test_budget_refuses_the_round_that_would_exceed_it() -> None:
    full = dp_params(clip_norm=1.0, noise_multiplier=1.1, delta=1e-5, rounds=30)
    budget = (full.epsilon_schedule[1] + full.epsilon_schedule[2]) / 2  # two rounds fit, three do not
    accountant = PrivacyAccountant(dataclasses.replace(full, epsilon_budget=budget))
    for _ in range(2):
        accountant.require_budget_for_next_round()
        accountant.record_round()

    with pytest.raises(PrivacyBudgetExceeded, match="round 3"):
        accountant.require_budget_for_next_round()
    assert accountant.spent().epsilon <= budget
    assert accountant.max_rounds_within_budget(30) == 2


def test_calibrated_noise_meets_the_target_epsilon_tightly() -> None:
    sigma = calibrate_noise_multiplier(target_epsilon=8.0, delta=1e-5, rounds=30)

    eps = dp_params(clip_norm=1.0, noise_multiplier=sigma, delta=1e-5, rounds=30).epsilon_schedule[-1]

    assert eps <= 8.0
    assert eps > 7.9


def test_a_job_with_the_computed_schedule_passes_verification() -> None:
    verify_epsilon_schedule(dp_job(rounds=4))  # raises if not


def test_a_job_that_understates_epsilon_is_refused_with_the_round_and_both_values() -> None:
    honest = dp_job(rounds=4)
    assert honest.dp is not None
    understated = [e / 2 for e in honest.dp["epsilon_schedule"]]  # type: ignore[attr-defined]
    job = dataclasses.replace(honest, dp={**honest.dp, "epsilon_schedule": understated})

    with pytest.raises(EpsilonScheduleMismatch, match=r"after round 1.*understates"):
        verify_epsilon_schedule(job)


def test_a_job_that_overstates_epsilon_is_accepted_as_conservative() -> None:
    honest = dp_job(rounds=2)
    assert honest.dp is not None
    job = dataclasses.replace(honest, dp={**honest.dp, "epsilon_schedule": [100.0, 200.0]})

    verify_epsilon_schedule(job)


def test_a_schedule_that_does_not_cover_every_round_is_refused() -> None:
    honest = dp_job(rounds=3)
    assert honest.dp is not None
    short: JobSpec = dataclasses.replace(
        honest,
        dp={**honest.dp, "epsilon_schedule": honest.dp["epsilon_schedule"][:2]},  # type: ignore[index]
    )

    with pytest.raises(JobSpecError, match="2 entries for a job of 3 rounds"):
        verify_epsilon_schedule(short)


@pytest.mark.parametrize(
    "bad",
    [
        {"clip_norm": 0.0},
        {"noise_multiplier": -1.0},
        {"delta": 1.0},
        {"epsilon_budget": 0},
        {"accountant": "moments"},
        {"clip_norm": True},
        {"surprise": 1},
        {"epsilon_schedule": []},
        {"epsilon_schedule": [1.0, 0.5]},
        {"epsilon_schedule": [1.0, float("inf")]},
        {"epsilon_schedule": "1.0"},
    ],
)
def test_invalid_dp_parameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(JobSpecError):
        params(**bad)


def test_missing_dp_parameters_are_refused() -> None:
    with pytest.raises(JobSpecError, match="noise_multiplier"):
        DpParams.from_mapping({"clip_norm": 1.0, "delta": 1e-5, "epsilon_schedule": [1.0]})
    with pytest.raises(JobSpecError, match=r"epsilon_schedule.*job init"):
        DpParams.from_mapping({"clip_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5})

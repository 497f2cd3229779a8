"""Reported epsilon equals dp-accounting's own computation; the budget stops the job before it is exceeded."""

from __future__ import annotations

import pytest
from dp_accounting import GaussianDpEvent
from dp_accounting.pld.pld_privacy_accountant import PLDAccountant
from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant

from enclavefl.errors import JobSpecError, PrivacyBudgetExceeded
from enclavefl.privacy import DpParams, PrivacyAccountant, calibrate_noise_multiplier, epsilon_after


def params(**kw: object) -> DpParams:
    base: dict[str, object] = {"clip_norm": 1.0, "noise_multiplier": 1.1, "delta": 1e-5}
    return DpParams.from_mapping(base | kw)


@pytest.mark.parametrize("rounds", [1, 7, 30])
@pytest.mark.parametrize("sigma", [0.8, 3.49])
def test_reported_epsilon_equals_dp_accounting_rdp(rounds: int, sigma: float) -> None:
    p = params(noise_multiplier=sigma)
    reference = RdpAccountant()
    for _ in range(rounds):  # composed event by event, unlike the code under test
        reference.compose(GaussianDpEvent(sigma))

    reported = epsilon_after(p, rounds)

    assert reported == pytest.approx(reference.get_epsilon(1e-5), rel=1e-12)


def test_reported_epsilon_equals_dp_accounting_pld() -> None:
    p = params(noise_multiplier=2.0, accountant="pld")
    reference = PLDAccountant()
    reference.compose(GaussianDpEvent(2.0), 5)

    assert epsilon_after(p, 5) == pytest.approx(reference.get_epsilon(1e-5), rel=1e-9)


def test_accountant_reports_epsilon_after_each_recorded_round() -> None:
    accountant = PrivacyAccountant(params())

    spent = [accountant.record_round() for _ in range(3)]

    assert [s.rounds for s in spent] == [1, 2, 3]
    assert [s.epsilon for s in spent] == [epsilon_after(params(), r) for r in (1, 2, 3)]
    assert spent[0].epsilon < spent[1].epsilon < spent[2].epsilon


def test_budget_refuses_the_round_that_would_exceed_it() -> None:
    budget = (epsilon_after(params(), 2) + epsilon_after(params(), 3)) / 2  # two rounds fit, three do not
    accountant = PrivacyAccountant(params(epsilon_budget=budget))
    for _ in range(2):
        accountant.require_budget_for_next_round()
        accountant.record_round()

    with pytest.raises(PrivacyBudgetExceeded, match="round 3"):
        accountant.require_budget_for_next_round()
    assert accountant.spent().epsilon <= budget
    assert accountant.max_rounds_within_budget(30) == 2


def test_calibrated_noise_meets_the_target_epsilon_tightly() -> None:
    sigma = calibrate_noise_multiplier(target_epsilon=8.0, delta=1e-5, rounds=30)

    eps = epsilon_after(params(noise_multiplier=sigma), 30)

    assert eps <= 8.0
    assert eps > 7.9


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
    ],
)
def test_invalid_dp_parameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(JobSpecError):
        params(**bad)


def test_missing_dp_parameters_are_refused() -> None:
    with pytest.raises(JobSpecError, match="noise_multiplier"):
        DpParams.from_mapping({"clip_norm": 1.0, "delta": 1e-5})

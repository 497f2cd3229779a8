"""Privacy accounting with dp-accounting: epsilon at the job's delta after each round, and the budget stop.

Every enrolled data owner takes part in every round (no sampling, so no amplification is claimed): round r
is one Gaussian mechanism with noise multiplier sigma on the sum of clipped deltas, and r rounds are that
mechanism self-composed r times. The neighbouring relation is "zero-out": one owner's clipped delta replaced
by zero (Kairouz et al. 2021). For the Gaussian mechanism it compares the same two distributions as
add/remove-one, N(0, (sigma C)^2) against N(C, (sigma C)^2), which is how dp-accounting is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from enclavefl.errors import PrivacyBudgetExceeded, PrivacyError
from enclavefl.privacy.params import AccountantName, DpParams


def make_accountant(name: AccountantName) -> dp_accounting.PrivacyAccountant:
    """A fresh dp-accounting accountant (RDP: fast and standard; PLD: tighter, slower)."""
    if name == "pld":
        return pld_privacy_accountant.PLDAccountant()
    return rdp_privacy_accountant.RdpAccountant()


def round_event(noise_multiplier: float, rounds: int) -> dp_accounting.DpEvent:
    """The DP event of `rounds` full-participation rounds."""
    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)


def epsilon_after(params: DpParams, rounds: int) -> float:
    """Epsilon at `params.delta` after `rounds` rounds (0 for no round)."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if rounds == 0:
        return 0.0
    accountant = make_accountant(params.accountant)
    accountant.compose(round_event(params.noise_multiplier, rounds))
    return float(accountant.get_epsilon(params.delta))


def calibrate_noise_multiplier(
    *, target_epsilon: float, delta: float, rounds: int, accountant: AccountantName = "rdp"
) -> float:
    """The smallest noise multiplier (to 1e-3) whose `rounds` rounds stay within `target_epsilon` at `delta`."""
    if not (target_epsilon > 0 and 0 < delta < 1 and rounds >= 1):
        raise PrivacyError("calibration needs target_epsilon > 0, 0 < delta < 1 and rounds >= 1")
    sigma = dp_accounting.calibrate_dp_mechanism(
        lambda: make_accountant(accountant),
        lambda s: round_event(s, rounds),
        target_epsilon,
        delta,
        dp_accounting.LowerEndpointAndGuess(0.05, 1.0),
        tol=1e-3,
    )
    return float(sigma)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacySpent:
    """What the accountant reports after a round (goes into round receipts)."""

    rounds: int
    epsilon: float
    delta: float
    epsilon_budget: float | None
    clip_norm: float
    noise_multiplier: float
    accountant: AccountantName

    def to_canonical(self) -> dict[str, object]:
        return {
            "rounds": self.rounds,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "epsilon_budget": self.epsilon_budget,
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "accountant": self.accountant,
        }


class PrivacyAccountant:
    """Counts released rounds; refuses a round that would take epsilon past the budget.

    Its state is one integer (rounds released), which the node seals with its checkpoint.
    """

    def __init__(self, params: DpParams, *, rounds_released: int = 0) -> None:
        self.params = params
        self._rounds = rounds_released
        self._epsilon = epsilon_after(params, rounds_released)

    @property
    def rounds_released(self) -> int:
        return self._rounds

    def require_budget_for_next_round(self) -> float:
        """Epsilon after one more round; raises PrivacyBudgetExceeded if that passes the budget."""
        nxt = epsilon_after(self.params, self._rounds + 1)
        budget = self.params.epsilon_budget
        if budget is not None and not nxt <= budget:
            raise PrivacyBudgetExceeded(
                f"round {self._rounds + 1} would bring epsilon to {nxt:.4g} at delta={self.params.delta:g}, "
                f"over the job's budget of {budget:g} (spent so far: {self._epsilon:.4g} in {self._rounds} rounds)"
            )
        return nxt

    def record_round(self) -> PrivacySpent:
        """Account for one released round."""
        self._rounds += 1
        self._epsilon = epsilon_after(self.params, self._rounds)
        return self.spent()

    def spent(self) -> PrivacySpent:
        return PrivacySpent(
            rounds=self._rounds,
            epsilon=self._epsilon,
            delta=self.params.delta,
            epsilon_budget=self.params.epsilon_budget,
            clip_norm=self.params.clip_norm,
            noise_multiplier=self.params.noise_multiplier,
            accountant=self.params.accountant,
        )

    def max_rounds_within_budget(self, limit: int) -> int:
        """How many rounds (up to `limit`) fit in the budget: for checking a job before it starts."""
        budget = self.params.epsilon_budget
        if budget is None:
            return limit
        lo, hi = 0, limit  # epsilon grows with rounds: binary search the last round within budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if epsilon_after(self.params, mid) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo

"""The enclave's privacy ledger: epsilon after each released round, read from the job, and the budget stop.

    ledger = PrivacyAccountant(params)         # params.epsilon_schedule: epsilon after rounds 1, 2, ...
    ledger.require_budget_for_next_round()     # PrivacyBudgetExceeded before a round that would pass the budget
    spent = ledger.record_round()              # goes into the round's receipt

Every enrolled data owner takes part in every round (no sampling, so no amplification is claimed): round r
is one Gaussian mechanism with noise multiplier sigma on the sum of clipped deltas, and r rounds are that
mechanism self-composed r times. The neighbouring relation is "zero-out": one owner's clipped delta replaced
by zero (Kairouz et al. 2021). That epsilon is computed with dp-accounting outside the enclave
(privacy/epsilon.py) when the job is written, bound into the job digest, and recomputed by every data owner
before it attests; here it is only looked up, so the enclave carries no accountant library.
"""

from __future__ import annotations

from dataclasses import dataclass

from enclavefl.errors import PrivacyBudgetExceeded, PrivacyError
from enclavefl.privacy.params import AccountantName, DpParams


def scheduled_epsilon(params: DpParams, rounds: int) -> float:
    """Epsilon after `rounds` released rounds, as the job states it (0 for none)."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    if rounds == 0:
        return 0.0
    if rounds > len(params.epsilon_schedule):
        raise PrivacyError(f"round {rounds} is past the job's epsilon schedule ({len(params.epsilon_schedule)} rounds)")
    return params.epsilon_schedule[rounds - 1]


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
        self._epsilon = scheduled_epsilon(params, rounds_released)

    @property
    def rounds_released(self) -> int:
        return self._rounds

    def require_budget_for_next_round(self) -> float:
        """Epsilon after one more round; raises PrivacyBudgetExceeded if that passes the budget."""
        nxt = scheduled_epsilon(self.params, self._rounds + 1)
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
        self._epsilon = scheduled_epsilon(self.params, self._rounds)
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
        schedule = self.params.epsilon_schedule[:limit]
        if budget is None:
            return len(schedule)
        return sum(1 for epsilon in schedule if epsilon <= budget)  # the schedule never decreases

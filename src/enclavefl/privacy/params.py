"""Central-DP parameters as a job carries them (`JobSpec.dp`, part of the job digest), parsed and checked."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from enclavefl.errors import JobSpecError

AccountantName = Literal["rdp", "pld"]
_KNOWN_KEYS = frozenset({"clip_norm", "noise_multiplier", "delta", "epsilon_budget", "accountant"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DpParams:
    """Per-round Gaussian mechanism on the sum of clipped deltas: noise std = noise_multiplier * clip_norm."""

    clip_norm: float
    noise_multiplier: float
    delta: float
    epsilon_budget: float | None = None  # None: account and report, but never stop the job
    accountant: AccountantName = "rdp"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise JobSpecError(f"dp.clip_norm: must be a positive number, got {self.clip_norm!r}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise JobSpecError(f"dp.noise_multiplier: must be a positive number, got {self.noise_multiplier!r}")
        if not 0 < self.delta < 1:
            raise JobSpecError(f"dp.delta: must lie in (0, 1), got {self.delta!r}")
        if self.epsilon_budget is not None and not (
            math.isfinite(self.epsilon_budget) and self.epsilon_budget > 0
        ):
            raise JobSpecError(f"dp.epsilon_budget: must be a positive number, got {self.epsilon_budget!r}")
        if self.accountant not in ("rdp", "pld"):
            raise JobSpecError(f"dp.accountant: must be 'rdp' or 'pld', got {self.accountant!r}")

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise added to the SUM of clipped deltas."""
        return self.noise_multiplier * self.clip_norm

    @classmethod
    def from_mapping(cls, dp: Mapping[str, object]) -> DpParams:
        """Parse `JobSpec.dp`; unknown keys are refused so that nothing in the digest goes unenforced."""
        unknown = set(dp) - _KNOWN_KEYS
        if unknown:
            raise JobSpecError(f"dp: unknown key(s) {', '.join(sorted(unknown))}")
        missing = {"clip_norm", "noise_multiplier", "delta"} - set(dp)
        if missing:
            raise JobSpecError(f"dp: missing key(s) {', '.join(sorted(missing))}")
        budget = dp.get("epsilon_budget")
        accountant = dp.get("accountant", "rdp")
        if accountant not in ("rdp", "pld"):
            raise JobSpecError(f"dp.accountant: must be 'rdp' or 'pld', got {accountant!r}")
        return cls(
            clip_norm=_number(dp, "clip_norm"),
            noise_multiplier=_number(dp, "noise_multiplier"),
            delta=_number(dp, "delta"),
            epsilon_budget=None if budget is None else _number(dp, "epsilon_budget"),
            accountant=accountant,
        )

    def to_mapping(self) -> dict[str, object]:
        """The `JobSpec.dp` form (JSON-serialisable)."""
        return {
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "delta": self.delta,
            "epsilon_budget": self.epsilon_budget,
            "accountant": self.accountant,
        }


def _number(dp: Mapping[str, object], key: str) -> float:
    value = dp[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(f"dp.{key}: must be a number, got {value!r}")
    return float(value)

"""Central-DP parameters as a job carries them (`JobSpec.dp`, part of the job digest), parsed and checked.

`epsilon_schedule[r-1]` is the epsilon at `delta` after r rounds, computed with dp-accounting by whoever writes
the job (`privacy.epsilon.dp_params`) and recomputed by every data owner before it attests
(`privacy.epsilon.verify_epsilon_schedule`). The enclave only reads it: it runs no accountant, so neither
dp-accounting nor scipy is part of what the data owners must trust.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from enclavefl.errors import JobSpecError

AccountantName = Literal["rdp", "pld"]
_KNOWN_KEYS = frozenset({"clip_norm", "noise_multiplier", "delta", "epsilon_budget", "accountant", "epsilon_schedule"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DpParams:
    """Per-round Gaussian mechanism on the sum of clipped deltas: noise std = noise_multiplier * clip_norm."""

    clip_norm: float
    noise_multiplier: float
    delta: float
    epsilon_schedule: tuple[float, ...]  # epsilon at `delta` after rounds 1, 2, ...; one entry per job round
    epsilon_budget: float | None = None  # None: account and report, but never stop the job
    accountant: AccountantName = "rdp"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise JobSpecError(f"dp.clip_norm: must be a positive number, got {self.clip_norm!r}")
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise JobSpecError(f"dp.noise_multiplier: must be a positive number, got {self.noise_multiplier!r}")
        if not 0 < self.delta < 1:
            raise JobSpecError(f"dp.delta: must lie in (0, 1), got {self.delta!r}")
        if self.epsilon_budget is not None and not (math.isfinite(self.epsilon_budget) and self.epsilon_budget > 0):
            raise JobSpecError(f"dp.epsilon_budget: must be a positive number, got {self.epsilon_budget!r}")
        if self.accountant not in ("rdp", "pld"):
            raise JobSpecError(f"dp.accountant: must be 'rdp' or 'pld', got {self.accountant!r}")
        _check_schedule(self.epsilon_schedule)

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
        if "epsilon_schedule" not in dp:
            raise JobSpecError(
                "dp: missing key epsilon_schedule (epsilon after each round, which the enclave reports and every "
                "data owner recomputes): write the dp table with `enclavefl job init --dp-noise-multiplier ...`"
            )
        budget = dp.get("epsilon_budget")
        accountant = dp.get("accountant", "rdp")
        if accountant not in ("rdp", "pld"):
            raise JobSpecError(f"dp.accountant: must be 'rdp' or 'pld', got {accountant!r}")
        return cls(
            clip_norm=_number(dp, "clip_norm"),
            noise_multiplier=_number(dp, "noise_multiplier"),
            delta=_number(dp, "delta"),
            epsilon_schedule=_schedule(dp["epsilon_schedule"]),
            epsilon_budget=None if budget is None else _number(dp, "epsilon_budget"),
            accountant=accountant,
        )

    def to_mapping(self) -> dict[str, object]:
        """The `JobSpec.dp` form (JSON- and TOML-serialisable; no budget key when there is no budget)."""
        mapping: dict[str, object] = {
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "delta": self.delta,
            "accountant": self.accountant,
            "epsilon_schedule": list(self.epsilon_schedule),
        }
        if self.epsilon_budget is not None:
            mapping["epsilon_budget"] = self.epsilon_budget
        return mapping


def _number(dp: Mapping[str, object], key: str) -> float:
    value = dp[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(f"dp.{key}: must be a number, got {value!r}")
    return float(value)


def _schedule(value: object) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
        raise JobSpecError(f"dp.epsilon_schedule: must be a list of numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _check_schedule(schedule: tuple[float, ...]) -> None:
    if not schedule:
        raise JobSpecError("dp.epsilon_schedule: empty; it needs one epsilon per round")
    if not all(math.isfinite(e) and e > 0 for e in schedule):
        raise JobSpecError(f"dp.epsilon_schedule: every entry must be a positive number, got {list(schedule)}")
    if any(b < a for a, b in itertools.pairwise(schedule)):
        raise JobSpecError("dp.epsilon_schedule: epsilon cannot decrease from one round to the next")

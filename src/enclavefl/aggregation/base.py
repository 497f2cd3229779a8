"""The aggregation Protocol that every strategy implements (FedAvg, DP wrappers, robust rules, server optimizers).

A round goes: `strategy.start_round(global_model)` -> `fold_inplace(update, weight=...)` once per accepted,
validated update as it arrives -> `finalize()` returns the new global model. Strategies that must see all
updates at once (median, Krum) say so through `holds_all_updates` and `peak_memory_bytes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ReleaseBelowK


@runtime_checkable
class RoundAggregator(Protocol):
    """Accumulates one round's updates."""

    @property
    def contributions(self) -> int:
        """How many updates were folded so far."""
        ...

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        """Fold a validated update. The update's arrays may be overwritten (they are consumed).

        The caller reuses the update's buffers once this returns (the node's staging slots): a strategy that
        keeps an update past the call must copy it.
        """
        ...

    def finalize(self) -> ModelWeights:
        """The new global model. Call once, after the last fold."""
        ...


@runtime_checkable
class AggregationStrategy(Protocol):
    """A rule that turns one round's updates into the next global model."""

    @property
    def name(self) -> str: ...

    @property
    def holds_all_updates(self) -> bool:
        """True when the strategy keeps every update in memory until finalize (robust rules)."""
        ...

    def parameters(self) -> Mapping[str, object]:
        """The strategy's parameters, as they enter the job digest (JSON-serialisable)."""
        ...

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        """Upper bound of the memory the round needs beyond the global model itself."""
        ...

    def start_round(self, global_model: ModelWeights) -> RoundAggregator:
        """Begin a round from `global_model` (not modified)."""
        ...


@runtime_checkable
class CarriesState(Protocol):
    """A strategy whose state outlives a round (a server optimizer's moments, centered clipping's last step).

    The node's sealed checkpoint keeps it (enclave/checkpoint.py), so a restarted node resumes the same rule.
    """

    def state_dict(self) -> ModelWeights: ...

    def load_state_dict(self, state: ModelWeights) -> None: ...


@runtime_checkable
class SpendsPrivacy(Protocol):
    """A strategy that charges each released round to a privacy accountant (central DP).

    The checkpoint keeps the count, so a restarted node cannot spend the job's epsilon budget twice.
    """

    @property
    def rounds_released(self) -> int: ...

    def resume_accounting(self, rounds_released: int) -> None: ...


def updates_behind_each_value(strategy: object, updates: int) -> int:
    """The fewest of a round's `updates` that any coordinate of `strategy`'s released model is computed from.

    Each strategy states it for itself (its `updates_behind_each_value` method, next to the rule it describes);
    wrappers ask their inner strategy through this function. A strategy that does not state it is refused with
    ReleaseBelowK: the enclave releases nothing it cannot vouch for (enclave/release_support.py).
    """
    stated = getattr(strategy, "updates_behind_each_value", None)
    if stated is None:
        raise ReleaseBelowK(
            f"strategy {type(strategy).__name__}: the enclave cannot tell how many updates its released values "
            "mix, so it refuses to run it"
        )
    support: int = stated(updates)
    return support

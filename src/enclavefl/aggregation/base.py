"""The aggregation Protocol that every strategy implements (FedAvg, DP wrappers, robust rules, server optimizers).

A round goes: `strategy.start_round(global_model)` -> `fold_inplace(update, weight=...)` once per accepted,
validated update as it arrives -> `finalize()` returns the new global model. Strategies that must see all
updates at once (median, Krum) say so through `holds_all_updates` and `peak_memory_bytes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from enclavefl.core.weights import ModelWeights


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

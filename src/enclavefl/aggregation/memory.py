"""The memory check a node runs when a job is submitted: will a round of this strategy fit?"""

from __future__ import annotations

from enclavefl.aggregation.base import AggregationStrategy
from enclavefl.errors import MemoryBudgetExceeded


def round_memory_bytes(strategy: AggregationStrategy, model_bytes: int, updates: int) -> int:
    """The global model plus what the strategy needs for one round of `updates` updates."""
    return model_bytes + strategy.peak_memory_bytes(model_bytes=model_bytes, updates=updates)


def check_memory_budget(strategy: AggregationStrategy, model_bytes: int, updates: int, limit_bytes: int) -> int:
    """Return the bytes a round needs; raise MemoryBudgetExceeded if that is over `limit_bytes`."""
    if model_bytes < 0 or updates < 1 or limit_bytes < 0:
        raise ValueError("model_bytes and limit_bytes must be >= 0 and updates >= 1")
    need = round_memory_bytes(strategy, model_bytes=model_bytes, updates=updates)
    if need > limit_bytes:
        held = " (it holds every update until the round closes)" if strategy.holds_all_updates else ""
        raise MemoryBudgetExceeded(
            f"strategy {strategy.name!r}{held} needs {need} bytes for {updates} updates of a {model_bytes}-byte "
            f"model, over the node's limit of {limit_bytes} bytes"
        )
    return need

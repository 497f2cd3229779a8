"""The last check before a round is sealed: its aggregate is finite, and if not, whose updates caused it.

    check_finite_aggregate(model)                      # NonFiniteAggregate naming the first bad tensor
    overflow_offenders({"a": 10.0, "m": 3e39}, limit)   # ("m",): the fewest largest senders to leave out

Every update is checked finite as it arrives (enclave/staging.py), but finite updates can still overflow
together: float32 values of 3e38 from an owner claiming 10 examples make `acc += w * x` infinite. The fold
cannot be undone exactly, so the round is redone without the offenders. Each update's contribution to the
accumulator is bounded by |weight| x max|value| (recorded at ingest); leaving out the largest contributions until
the rest sum below half the accumulator's range guarantees the redone round cannot overflow on their account,
and never leaves out an owner whose contribution is smaller than one kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from enclavefl.aggregation.fedavg import accumulator_dtype
from enclavefl.core.weights import ModelSchema, ModelWeights
from enclavefl.errors import NonFiniteAggregate


def check_finite_aggregate(model: ModelWeights, *, round_index: int) -> None:
    """NonFiniteAggregate if any floating tensor of `model` holds NaN or Inf."""
    for name, tensor in model.items():
        if tensor.dtype.kind != "f" or tensor.size == 0:
            continue
        # min and max propagate NaN and reach +-Inf: two passes, no boolean array the size of the model
        low, high = np.minimum.reduce(tensor, axis=None), np.maximum.reduce(tensor, axis=None)
        if not (np.isfinite(low) and np.isfinite(high)):
            raise NonFiniteAggregate(f"round {round_index}: the aggregate of tensor {name!r} is not finite")


def overflow_limit(schema: ModelSchema) -> float:
    """Half the range of the narrowest floating accumulator: sums of contributions below it stay finite."""
    ranges = [_largest(accumulator_dtype(np.dtype(t.dtype))) for t in schema.tensors if np.dtype(t.dtype).kind == "f"]
    return min(ranges, default=float(np.finfo(np.float64).max)) / 2


def _largest(dtype: np.dtype[np.generic]) -> float:
    return float(np.finfo(dtype).max)  # type: ignore[type-var]  # only floating dtypes reach here


def overflow_offenders(contributions: Mapping[str, float], limit: float) -> tuple[str, ...]:
    """The owners to leave out: largest contributions first, until the rest sum below `limit` (at least one)."""
    ranked = sorted(contributions.items(), key=lambda item: (-item[1], item[0]))
    count = 1
    # summed afresh each time (a few hundred owners at most): a contribution may itself be inf in float64
    while count < len(ranked) and sum(value for _, value in ranked[count:]) >= limit:
        count += 1
    return tuple(sorted(name for name, _ in ranked[:count]))

"""A model's floating tensors as one flat vector: what owners clip, encode and mask, and the enclave sums.

    delta = flat_delta(trained, global_model)          # float64, the float tensors in name order
    clip_inplace(delta, clip_norm)
    new_global = add_flat(global_model, delta_sum / n)

Integer tensors (counters) are not masked: like central DP (privacy/central_dp.py), masked mode keeps their
global value, since a sum of counters is not an update.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from enclavefl.core.weights import Array, ModelWeights

F64 = npt.NDArray[np.float64]


def float_names(model: ModelWeights) -> list[str]:
    return sorted(name for name, array in model.items() if array.dtype.kind == "f")


def flat_size(model: ModelWeights) -> int:
    return sum(int(model[name].size) for name in float_names(model))


def flat_delta(update: ModelWeights, base: ModelWeights) -> F64:
    """update - base over the float tensors, flattened in name order, in float64."""
    names = float_names(base)
    out = np.empty(flat_size(base), dtype=np.float64)
    pos = 0
    for name in names:
        size = int(base[name].size)
        np.subtract(update[name].reshape(-1), base[name].reshape(-1), out=out[pos : pos + size], dtype=np.float64)
        pos += size
    return out


def clip_inplace(vector: F64, clip_norm: float) -> bool:
    """Scale `vector` down to L2 norm <= clip_norm; True if it was scaled. Non-finite input raises ValueError."""
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm):
        raise ValueError("the update has non-finite values: it cannot be clipped or masked")
    if norm <= clip_norm:
        return False
    vector *= clip_norm / norm
    return True


def add_flat(base: ModelWeights, flat: F64) -> ModelWeights:
    """base + flat over the float tensors (cast back to each tensor's dtype); other tensors unchanged."""
    out: dict[str, Array] = {}
    pos = 0
    names = set(float_names(base))
    for name in float_names(base):
        array = base[name]
        size = int(array.size)
        out[name] = (array.astype(np.float64) + flat[pos : pos + size].reshape(array.shape)).astype(array.dtype)
        pos += size
    for name, array in base.items():
        if name not in names:
            out[name] = np.array(array, copy=True)
    return ModelWeights({name: out[name] for name in base})

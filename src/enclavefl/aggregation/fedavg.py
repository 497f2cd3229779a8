"""Streaming federated averaging: each update is folded into a preallocated accumulator as it arrives.

Memory is one accumulator the size of the model whatever the number of updates (Flower and OpenFL keep
every update: (n+1)x). The fold is a fused a*x+y (BLAS axpy, aggregation/blas.py) into the accumulator: one read
of the update, one read and one write of the accumulator, the same memory traffic as numpy's in-place add.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from enclavefl.aggregation.blas import axpy_inplace
from enclavefl.core.weights import Array, ModelWeights
from enclavefl.errors import NotEnoughContributions, RoundStateError


def accumulator_dtype(dtype: np.dtype[np.generic]) -> np.dtype[np.generic]:
    """Floats accumulate in their own precision; integers and bools in float64, rounded back at the end."""
    return dtype if dtype.kind == "f" and dtype.itemsize >= 4 else np.dtype(np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class FedAvg:
    """Weighted (by example count) or unweighted mean of the updates."""

    weighted: bool = True

    @property
    def name(self) -> str:
        return "fedavg"

    @property
    def holds_all_updates(self) -> bool:
        return False

    def parameters(self) -> Mapping[str, object]:
        return {"weighted": self.weighted}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        # the accumulator (laid out in the next model's bytes: it is the result) + the staging slot of the update
        # being received (enclave/staging.py); float64 accumulators only for integer tensors, which are small
        return 2 * model_bytes

    def updates_behind_each_value(self, updates: int) -> int:
        return updates  # a mean over every folded update

    def start_round(self, global_model: ModelWeights, *, accumulators: ModelWeights | None = None) -> FedAvgRound:
        """`accumulators`: writable arrays of the model's schema to accumulate in (the node passes views into the
        next global model's safetensors buffer, so that finalize leaves the new model in place, without a copy)."""
        return FedAvgRound(global_model=global_model, weighted=self.weighted, accumulators=accumulators)


@dataclass(slots=True, kw_only=True)
class FedAvgRound:
    global_model: ModelWeights
    weighted: bool
    accumulators: ModelWeights | None = None
    _acc: dict[str, Array] = field(init=False)
    _total_weight: float = field(init=False, default=0.0)
    _count: int = field(init=False, default=0)
    _finalized: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.accumulators is not None:
            self._acc = _given_accumulators(self.accumulators, self.global_model)
            return
        # np.full writes every page now, at round open; np.zeros would defer the page faults (~1 s/GB on a VM)
        # to the first fold, which runs while an upload waits for its acknowledgement.
        self._acc = {n: np.full(a.shape, 0, dtype=accumulator_dtype(a.dtype)) for n, a in self.global_model.items()}

    @property
    def contributions(self) -> int:
        return self._count

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        if self._finalized:
            raise RoundStateError("round already finalized: no more updates can be folded")
        if not weight > 0 or not np.isfinite(weight):
            raise ValueError(f"update weight must be a positive finite number, got {weight}")
        alpha = float(weight) if self.weighted else 1.0
        for name, acc in self._acc.items():
            axpy_inplace(acc, update[name], alpha)
        self._total_weight += alpha
        self._count += 1

    def finalize(self) -> ModelWeights:
        if self._finalized:
            raise RoundStateError("round already finalized")
        if self._count == 0:
            raise NotEnoughContributions("no update was folded: nothing to average")
        self._finalized = True
        out: dict[str, Array] = {}
        scale = 1.0 / self._total_weight
        for name, acc in self._acc.items():
            np.multiply(acc, scale, out=acc)
            out[name] = cast_back(acc, self.global_model[name].dtype)
        return ModelWeights(out)


def cast_back(acc: Array, dtype: np.dtype[np.generic]) -> Array:
    """The accumulator in the model's dtype: integers are rounded to nearest, floats returned as they are."""
    if acc.dtype == dtype:
        return acc
    if dtype.kind in "iub":
        return np.rint(acc).astype(dtype)
    return acc.astype(dtype)


def _given_accumulators(given: ModelWeights, global_model: ModelWeights) -> dict[str, Array]:
    """The caller's arrays, zeroed (which also faults their pages in now); each must fit its tensor exactly."""
    if given.schema != global_model.schema:
        raise ValueError("accumulators must have the global model's names, shapes and dtypes")
    out: dict[str, Array] = {}
    for name, acc in given.items():
        if accumulator_dtype(acc.dtype) != acc.dtype or not acc.flags.writeable:
            raise ValueError(f"accumulator {name!r} must be writable and of an accumulating dtype, got {acc.dtype}")
        acc.fill(0)
        out[name] = acc
    return out

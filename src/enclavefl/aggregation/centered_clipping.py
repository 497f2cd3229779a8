"""Centered clipping (Karimireddy, He, Jaggi, ICML 2021, "Learning from History for Byzantine Robust Optimization").

    strategy = CenteredClipping(tau=0.5)       # job spec: [strategy] name = "centered_clipping", params = { tau = 0.5 }
    rnd = strategy.start_round(global_model)   # center c = global + v, v = the previous round's step (history)
    rnd.fold_inplace(update, weight=n_i)       # as it arrives: acc += min(1, tau / ||u - c||) (u - c)
    new_global = rnd.finalize()                # c + acc / n, and v <- new_global - global for the next round

Honest steps of consecutive rounds point the same way; an attacker's does not. Each owner's update is compared
with the center (the global model moved by last round's aggregate step), the difference is clipped to L2 radius
`tau` over all floating tensors, and the clipped differences of ALL n updates are averaged:

    step = v + (1/n) sum_i clip_tau(d_i - v),    d_i = u_i - global,   clip_tau(x) = x min(1, tau / ||x||)

Unlike the median or Krum, every released coordinate is a mean over every update (each moves it by at most
tau / n), so K keeps its meaning (ReleaseBelowK). With tau above every honest distance and no outlier it IS the
unweighted mean (FedAvg). Claimed example counts are ignored (an attacker controls its own claim); integer tensors
take the plain unweighted mean. The paper iterates the clipping L times over held updates; this is L = 1 around a
center fixed before the round, which folds each update as it arrives: memory is the center, the step v carried
between rounds and one accumulator (about 4x the model), whatever the number of owners.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from enclavefl.aggregation.blas import axpy_inplace
from enclavefl.aggregation.fedavg import accumulator_dtype, cast_back
from enclavefl.core.weights import Array, ModelWeights
from enclavefl.errors import JobSpecError, NotEnoughContributions, RoundStateError

CHUNK_ELEMENTS = 1 << 18  # float64 scratch per block: 2 MiB
_ROUNDS_KEY = "__rounds__"
FloatArray = npt.NDArray[np.floating[Any]]


class CenteredClipping:
    """Streaming centered clipping; the previous round's step (the center's history) lives in this object."""

    def __init__(self, *, tau: float) -> None:
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not math.isfinite(tau) or not tau > 0:
            raise JobSpecError(f"strategy.params.tau: the clip radius must be a finite number > 0, got {tau!r}")
        self.tau = float(tau)
        self._step: dict[str, FloatArray] = {}  # v per floating tensor; empty before the first round (v = 0)
        self.rounds = 0

    @property
    def name(self) -> str:
        return "centered_clipping"

    @property
    def holds_all_updates(self) -> bool:
        return False

    def parameters(self) -> Mapping[str, object]:
        return {"tau": self.tau}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        # v (carried), the center, the accumulator, the result; plus two float64 chunks of scratch
        return 4 * model_bytes + 2 * CHUNK_ELEMENTS * 8

    def updates_behind_each_value(self, updates: int) -> int:
        return updates  # the center moves by a mean over every (clipped) update

    def start_round(self, global_model: ModelWeights) -> CenteredClippingRound:
        return CenteredClippingRound(strategy=self, global_model=global_model)

    # --- state (sealed with the node's checkpoint, like a server optimizer's) ---------------------
    def state_dict(self) -> ModelWeights:
        arrays: dict[str, Array] = {f"v/{n}": a.copy() for n, a in self._step.items()}
        arrays[_ROUNDS_KEY] = np.array(self.rounds, dtype=np.int64)
        return ModelWeights(arrays)

    def load_state_dict(self, state: ModelWeights) -> None:
        if _ROUNDS_KEY not in state:
            raise JobSpecError("centered clipping state lacks its round count")
        step: dict[str, FloatArray] = {}
        for key, array in state.items():
            if key.startswith("v/"):
                if array.dtype.kind != "f":
                    raise JobSpecError(f"centered clipping state: {key} must be floating, got {array.dtype}")
                step[key[2:]] = np.array(array, copy=True)
        self._step, self.rounds = step, int(state[_ROUNDS_KEY])

    def step_of(self, name: str) -> FloatArray | None:
        """Last round's aggregate step for tensor `name` (None before the first round)."""
        return self._step.get(name)

    def remember_step(self, step: dict[str, FloatArray]) -> None:
        """Called by a round's finalize: its step is the next round's center offset."""
        self._step = step
        self.rounds += 1


class CenteredClippingRound:
    """One round: folds each update as it arrives (clip its distance to the fixed center, add to the sum)."""

    def __init__(self, *, strategy: CenteredClipping, global_model: ModelWeights) -> None:
        self._strategy = strategy
        self._global = global_model
        self._center: dict[str, Array] = {}
        self._acc: dict[str, Array] = {}
        for name, base in global_model.items():
            work = accumulator_dtype(base.dtype)
            step = strategy.step_of(name) if base.dtype.kind == "f" else None
            center = base.astype(work, copy=True)
            if step is not None:
                center += step.astype(work, copy=False)
            self._center[name] = center
            self._acc[name] = np.full(base.shape, 0, dtype=work)  # written now: no page faults during folds
        self._count = 0
        self._finalized = False

    @property
    def contributions(self) -> int:
        return self._count

    def distance_to_center(self, update: ModelWeights) -> float:
        """L2 distance between `update` and the center over every floating tensor (float64 arithmetic)."""
        total = 0.0
        for name, center in self._center.items():
            if self._global[name].dtype.kind != "f":
                continue
            for diff in _chunks_of_difference(update[name], center):
                total += float(np.dot(diff, diff))
        return math.sqrt(total)

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        """Add min(1, tau / ||u - c||) (u - c); `weight` (a claimed example count) is ignored on purpose."""
        if self._finalized:
            raise RoundStateError("round already finalized: no more updates can be folded")
        distance = self.distance_to_center(update)
        scale = 1.0 if distance <= self._strategy.tau else self._strategy.tau / distance
        for name, acc in self._acc.items():
            flat_acc = acc.reshape(-1)
            clipped = scale if self._global[name].dtype.kind == "f" else 1.0  # integers: plain mean
            start = 0
            for diff in _chunks_of_difference(update[name], self._center[name]):
                stop = start + diff.size
                axpy_inplace(flat_acc[start:stop], diff.astype(acc.dtype, copy=False), clipped)
                start = stop
        self._count += 1

    def finalize(self) -> ModelWeights:
        if self._finalized:
            raise RoundStateError("round already finalized")
        if self._count == 0:
            raise NotEnoughContributions("no update was folded: nothing to aggregate")
        self._finalized = True
        out: dict[str, Array] = {}
        step: dict[str, FloatArray] = {}
        for name, acc in self._acc.items():
            base = self._global[name]
            np.multiply(acc, 1.0 / self._count, out=acc)
            np.add(acc, self._center[name], out=acc)  # the new model: center + mean clipped difference
            out[name] = cast_back(acc, base.dtype)
            if base.dtype.kind == "f":
                step[name] = np.subtract(out[name], base, dtype=acc.dtype)
        self._strategy.remember_step(step)
        return ModelWeights(out)


def _chunks_of_difference(values: Array, center: Array) -> Iterator[npt.NDArray[np.float64]]:
    """(values - center) as float64 blocks of CHUNK_ELEMENTS, in flat order (one block in memory at a time)."""
    flat_values, flat_center = values.reshape(-1), center.reshape(-1)
    for i in range(0, flat_center.size, CHUNK_ELEMENTS):
        yield np.subtract(flat_values[i : i + CHUNK_ELEMENTS], flat_center[i : i + CHUNK_ELEMENTS], dtype=np.float64)

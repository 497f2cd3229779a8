"""Robust aggregation rules: coordinate-wise median, trimmed mean, Krum and Multi-Krum.

Unlike FedAvg they must see every update before they can say anything, so a round HOLDS ALL UPDATES:
memory is n x model for the held updates + 1 x model for the result + a bounded scratch (coordinates are
processed in chunks of CHUNK_ELEMENTS, stacked as float64 across the n updates). `peak_memory_bytes` states
that bound and `aggregation.memory.check_memory_budget` checks it against the node's limit at job submission.

They ignore example counts on purpose: a weight claimed by the sender is one more thing an attacker controls.
All rules are translation-equivariant, so they run on full weights; distances are taken on deltas from the
global model to keep the arithmetic well conditioned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from enclavefl.aggregation.fedavg import cast_back
from enclavefl.core.weights import Array, ModelWeights
from enclavefl.errors import JobSpecError, NotEnoughContributions, RoundStateError

CHUNK_ELEMENTS = 1 << 18  # coordinates per scratch block: n * 2 MiB of float64
F64 = npt.NDArray[np.float64]
ChunkRule = Callable[[F64], F64]  # (n, c) stacked coordinates -> (c,) aggregate


def scratch_bytes(updates: int) -> int:
    """The stacked block and the sorted copy numpy makes of it."""
    return 2 * updates * CHUNK_ELEMENTS * 8


class HeldUpdatesRound:
    """Keeps every folded update, then applies a rule over them at finalize."""

    def __init__(self, *, global_model: ModelWeights, rule: Callable[[list[ModelWeights]], ModelWeights]) -> None:
        self._global = global_model
        self._rule = rule
        self._held: list[ModelWeights] = []
        self._finalized = False

    @property
    def contributions(self) -> int:
        return len(self._held)

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        """Hold a copy of `update`: the caller may reuse its buffers (the node stages updates in a pool)."""
        if self._finalized:
            raise RoundStateError("round already finalized: no more updates can be folded")
        self._held.append(update.copy())

    def finalize(self) -> ModelWeights:
        if self._finalized:
            raise RoundStateError("round already finalized")
        if not self._held:
            raise NotEnoughContributions("no update was folded: nothing to aggregate")
        self._finalized = True
        try:
            return self._rule(self._held)
        finally:
            self._held.clear()


def coordinatewise(global_model: ModelWeights, held: list[ModelWeights], rule: ChunkRule) -> ModelWeights:
    """Apply `rule` to every coordinate across the held updates, chunk by chunk."""
    out: dict[str, Array] = {}
    for name, base in global_model.items():
        flat_views = [u[name].reshape(-1) for u in held]
        result = np.empty(base.size, dtype=np.float64)
        for start in range(0, base.size, CHUNK_ELEMENTS):
            stop = min(start + CHUNK_ELEMENTS, base.size)
            block = np.stack([v[start:stop] for v in flat_views]).astype(np.float64, copy=False)
            result[start:stop] = rule(block)
        out[name] = cast_back(result.reshape(base.shape), base.dtype)
    return ModelWeights(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinateMedian:
    """Coordinate-wise median (Yin et al. 2018)."""

    @property
    def name(self) -> str:
        return "median"

    @property
    def holds_all_updates(self) -> bool:
        return True

    def parameters(self) -> Mapping[str, object]:
        return {}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        return (updates + 1) * model_bytes + scratch_bytes(updates)

    def updates_behind_each_value(self, updates: int) -> int:
        return min(1, updates)  # the middle value of each coordinate is one update's

    def start_round(self, global_model: ModelWeights) -> HeldUpdatesRound:
        def rule(held: list[ModelWeights]) -> ModelWeights:
            return coordinatewise(global_model, held, lambda b: np.median(b, axis=0))

        return HeldUpdatesRound(global_model=global_model, rule=rule)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrimmedMean:
    """Coordinate-wise mean after dropping the floor(beta * n) largest and smallest values (Yin et al. 2018)."""

    beta: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.beta < 0.5:
            raise JobSpecError(f"strategy.params.beta: must lie in [0, 0.5), got {self.beta!r}")

    @property
    def name(self) -> str:
        return "trimmed_mean"

    @property
    def holds_all_updates(self) -> bool:
        return True

    def parameters(self) -> Mapping[str, object]:
        return {"beta": self.beta}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        return (updates + 1) * model_bytes + scratch_bytes(updates)

    def trimmed_per_side(self, updates: int) -> int:
        return int(np.floor(self.beta * updates))

    def updates_behind_each_value(self, updates: int) -> int:
        return updates - 2 * self.trimmed_per_side(updates)

    def start_round(self, global_model: ModelWeights) -> HeldUpdatesRound:
        def rule(held: list[ModelWeights]) -> ModelWeights:
            k = self.trimmed_per_side(len(held))

            def trimmed(block: F64) -> F64:
                ordered = np.sort(block, axis=0)
                return np.asarray(ordered[k : len(held) - k].mean(axis=0), dtype=np.float64)

            return coordinatewise(global_model, held, trimmed)

        return HeldUpdatesRound(global_model=global_model, rule=rule)


@dataclass(frozen=True, slots=True, kw_only=True)
class Krum:
    """Krum (select=1) and Multi-Krum (select=m) of Blanchard et al. 2017, tolerating `byzantine` senders.

    Each update is scored by the sum of squared distances to its n - f - 2 nearest others; the `select`
    lowest-scored updates are averaged (unweighted). Needs n >= 2f + 3.
    """

    byzantine: int = 1
    select: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.byzantine, int) or self.byzantine < 0:
            raise JobSpecError(f"strategy.params.byzantine: must be an integer >= 0, got {self.byzantine!r}")
        if not isinstance(self.select, int) or self.select < 1:
            raise JobSpecError(f"strategy.params.select: must be an integer >= 1, got {self.select!r}")

    @property
    def name(self) -> str:
        return "krum" if self.select == 1 else "multikrum"

    @property
    def holds_all_updates(self) -> bool:
        return True

    def parameters(self) -> Mapping[str, object]:
        return {"byzantine": self.byzantine, "select": self.select}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        return (updates + 1) * model_bytes + scratch_bytes(updates) + 8 * updates * updates

    def minimum_updates(self) -> int:
        return max(2 * self.byzantine + 3, self.select)

    def updates_behind_each_value(self, updates: int) -> int:
        return self.select  # the mean of `select` updates (with fewer inputs Krum releases nothing)

    def start_round(self, global_model: ModelWeights) -> HeldUpdatesRound:
        def rule(held: list[ModelWeights]) -> ModelWeights:
            n = len(held)
            if n < self.minimum_updates():
                raise NotEnoughContributions(
                    f"{self.name} with byzantine={self.byzantine}, select={self.select} needs at least "
                    f"{self.minimum_updates()} updates, got {n}"
                )
            chosen = krum_selection(global_model, held, byzantine=self.byzantine, select=self.select)
            picked = [held[i] for i in chosen]
            return coordinatewise(global_model, picked, lambda b: np.asarray(b.mean(axis=0), dtype=np.float64))

        return HeldUpdatesRound(global_model=global_model, rule=rule)


def pairwise_squared_distances(global_model: ModelWeights, held: list[ModelWeights]) -> F64:
    """(n, n) squared L2 distances between updates, over all tensors, computed on deltas chunk by chunk."""
    n = len(held)
    dist = np.zeros((n, n), dtype=np.float64)
    for name, base in global_model.items():
        flat_base = base.reshape(-1).astype(np.float64)
        flat = [u[name].reshape(-1) for u in held]
        for start in range(0, base.size, CHUNK_ELEMENTS):
            stop = min(start + CHUNK_ELEMENTS, base.size)
            block = np.stack([v[start:stop] for v in flat]).astype(np.float64)
            block -= flat_base[start:stop]
            sq = np.einsum("ij,ij->i", block, block)
            dist += sq[:, None] + sq[None, :] - 2.0 * (block @ block.T)
    np.maximum(dist, 0.0, out=dist)  # rounding can leave tiny negatives
    np.fill_diagonal(dist, 0.0)
    return dist


def krum_selection(global_model: ModelWeights, held: list[ModelWeights], *, byzantine: int, select: int) -> list[int]:
    """Indices of the `select` updates with the lowest Krum scores (ties broken by arrival order)."""
    dist = pairwise_squared_distances(global_model, held)
    n = len(held)
    neighbours = n - byzantine - 2
    scores = np.empty(n, dtype=np.float64)
    for i in range(n):
        others = np.delete(dist[i], i)
        scores[i] = float(np.sort(others)[:neighbours].sum())
    return [int(i) for i in np.argsort(scores, kind="stable")[:select]]

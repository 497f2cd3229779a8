"""Central differential privacy inside the secure worker, as a wrapper over an averaging strategy.

Per update: delta = update - global (floating tensors), its total L2 norm over every tensor, scaled down to
at most `clip_norm`, folded into the inner strategy as `global + clipped delta` with weight 1. At finalize the
inner mean is global + sum(clipped)/n; Gaussian noise of std `noise_multiplier * clip_norm` on the SUM is
added as std/n on that mean, so the release is global + (sum(clipped) + N(0, (sigma C)^2 I)) / n.

Why unweighted: the sensitivity of the sum to one owner is clip_norm only when every owner counts once; with
example-count weights an owner could claim a large count and its share would exceed clip_norm. So the inner
strategy must be an unweighted mean (enclave/strategies.py enforces it); robust rules are refused because the
noise above is calibrated to a sum, not to a median or to Krum's selection.

Integer tensors (counters) carry no gradient: the global value is kept and updates cannot move it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from enclavefl.aggregation.base import AggregationStrategy, RoundAggregator, updates_behind_each_value
from enclavefl.core.weights import Array, ModelWeights
from enclavefl.errors import NotEnoughContributions, RoundStateError
from enclavefl.privacy.accountant import PrivacyAccountant, PrivacySpent
from enclavefl.privacy.noise import ChaCha20Gaussian, NoiseSource
from enclavefl.privacy.params import DpParams

F64 = npt.NDArray[np.float64]


class CentralDP:
    """Clip each update's delta, fold into `inner`, add Gaussian noise to the aggregate; account each round.

    State across rounds: the accountant (rounds released). `noise` is injectable (tests); by default a
    ChaCha20 stream keyed from os.urandom.
    """

    def __init__(self, *, inner: AggregationStrategy, params: DpParams, noise: NoiseSource | None = None) -> None:
        self.inner = inner
        self.params = params
        self.accountant = PrivacyAccountant(params)
        self._noise = noise if noise is not None else ChaCha20Gaussian.from_urandom()

    @property
    def name(self) -> str:
        return f"central-dp({self.inner.name})"

    @property
    def holds_all_updates(self) -> bool:
        return self.inner.holds_all_updates

    def parameters(self) -> Mapping[str, object]:
        return {"inner": self.inner.name, "inner_params": dict(self.inner.parameters()), **self.params.to_mapping()}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        # the inner round + one float64 delta buffer + the noise scratch (at most the model in float64)
        return self.inner.peak_memory_bytes(model_bytes=model_bytes, updates=updates) + 4 * model_bytes

    def updates_behind_each_value(self, updates: int) -> int:
        return updates_behind_each_value(self.inner, updates)  # noise mixes nothing out

    def privacy_spent(self) -> PrivacySpent:
        return self.accountant.spent()

    @property
    def rounds_released(self) -> int:
        return self.accountant.rounds_released

    def resume_accounting(self, rounds_released: int) -> None:
        """Resume from a checkpoint: `rounds_released` rounds are already charged to the budget."""
        self.accountant = PrivacyAccountant(self.params, rounds_released=rounds_released)

    def noise_sum_inplace(self, total: F64) -> None:
        """Add N(0, (noise_multiplier * clip_norm)^2) per coordinate to a sum of clipped deltas, in place.

        Masked mode (enclave/masked_round.py): the owners clipped, the enclave sees only the sum, so the
        Gaussian mechanism applies to that sum directly. The caller charges the round to the accountant.
        """
        noise: F64 = np.empty(total.shape, dtype=np.float64)
        self._noise.standard_normal_into(noise)
        noise *= self.params.noise_std
        total += noise

    def start_round(self, global_model: ModelWeights) -> CentralDPRound:
        """Refuses (PrivacyBudgetExceeded) before the round opens if releasing it would pass the budget."""
        self.accountant.require_budget_for_next_round()
        return CentralDPRound(
            global_model=global_model,
            inner=self.inner.start_round(global_model),
            reuse_buffers=not self.inner.holds_all_updates,
            params=self.params,
            noise=self._noise,
            accountant=self.accountant,
        )


class CentralDPRound:
    """One round of CentralDP; not thread-safe (the secure worker folds under its lock)."""

    def __init__(
        self,
        *,
        global_model: ModelWeights,
        inner: RoundAggregator,
        reuse_buffers: bool,
        params: DpParams,
        noise: NoiseSource,
        accountant: PrivacyAccountant,
    ) -> None:
        self._global = global_model
        self._inner = inner
        self._reuse = reuse_buffers
        self._params = params
        self._noise = noise
        self._accountant = accountant
        self._float_names = [n for n, a in global_model.items() if a.dtype.kind == "f"]
        self._buffers: dict[str, F64] = {}
        self._finalized = False
        self.clipped = 0  # how many updates were scaled down (an aggregate count, safe to report)

    @property
    def contributions(self) -> int:
        return self._inner.contributions

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        """Clip and fold; `weight` (example count) is ignored on purpose: the DP mean is unweighted."""
        if self._finalized:
            raise RoundStateError("round already finalized: no more updates can be folded")
        deltas = self._deltas(update)
        norm = float(np.sqrt(sum(float(np.vdot(d, d)) for d in deltas.values())))
        scale = 1.0 if norm <= self._params.clip_norm else self._params.clip_norm / norm
        if scale < 1.0:
            self.clipped += 1
        folded: dict[str, Array] = {}
        for name, base in self._global.items():
            if name in deltas:
                d = deltas[name]
                d *= scale
                np.add(d, base, out=d)
                folded[name] = d.astype(base.dtype, copy=False)
            else:
                folded[name] = np.array(base, copy=True)  # integer tensors: the global value, unmoved
        self._inner.fold_inplace(ModelWeights(folded), weight=1.0)

    def finalize(self) -> ModelWeights:
        """The noisy mean; the round is charged to the accountant here, when it is released."""
        if self._finalized:
            raise RoundStateError("round already finalized")
        n = self._inner.contributions
        if n == 0:
            raise NotEnoughContributions("no update was folded: nothing to release")
        mean = self._inner.finalize()
        self._finalized = True
        std_on_mean = self._params.noise_std / n
        out: dict[str, Array] = {}
        for name, value in mean.items():
            if name in self._float_names:
                noise: F64 = np.empty(value.shape, dtype=np.float64)
                self._noise.standard_normal_into(noise)
                noise *= std_on_mean
                np.add(noise, value, out=noise)
                out[name] = noise.astype(value.dtype, copy=False)
            else:
                out[name] = value
        self._accountant.record_round()
        return ModelWeights(out)

    def _deltas(self, update: ModelWeights) -> dict[str, F64]:
        """update - global per floating tensor in float64 (decoded arrays are read-only: never written)."""
        deltas: dict[str, F64] = {}
        for name in self._float_names:
            base = self._global[name]
            buf = self._buffers.get(name) if self._reuse else None
            if buf is None:
                buf = np.empty(base.shape, dtype=np.float64)
                if self._reuse:
                    self._buffers[name] = buf
            np.subtract(update[name], base, out=buf, dtype=np.float64)
            deltas[name] = buf
        return deltas

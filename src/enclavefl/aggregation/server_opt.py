"""Server optimizers over the averaged update (Reddi et al. 2021, "Adaptive Federated Optimization").

Each wraps an inner averaging strategy (FedAvg, or CentralDP over FedAvg, so DP noise is added BEFORE the
optimizer: the optimizer is then post-processing and costs no privacy). At finalize the inner mean gives the
pseudo-gradient delta = mean - global for every floating tensor, and the server takes one optimizer step:

    FedAvgM    m = momentum*m + delta;                      x += server_lr * m
    FedAdagrad m = b1*m + (1-b1)*delta; v = v + delta^2;     x += eta * m / (sqrt(v) + tau)
    FedAdam    m = b1*m + (1-b1)*delta; v = b2*v + (1-b2)*delta^2
    FedYogi    m = b1*m + (1-b1)*delta; v = v - (1-b2)*delta^2*sign(v - delta^2)

Integer tensors take the inner mean as it is. The optimizer state (m, v and the step count) lives in the
strategy object across rounds; `state_dict()` / `load_state_dict()` expose it as ModelWeights so that a
later issue can seal it with the node's checkpoint (until then a restarted node restarts the optimizer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from enclavefl.aggregation.base import AggregationStrategy, RoundAggregator, updates_behind_each_value
from enclavefl.aggregation.fedavg import accumulator_dtype
from enclavefl.core.weights import Array, ModelWeights
from enclavefl.errors import JobSpecError, RoundStateError

_STEP_KEY = "__step__"
FloatArray = npt.NDArray[np.floating[Any]]


class ServerOptimizer:
    """Base for the four server optimizers: everything except the per-tensor update rule."""

    kind = "server-opt"

    def __init__(self, *, inner: AggregationStrategy, **hyper: float) -> None:
        for key, value in hyper.items():
            if not np.isfinite(value) or value < 0:
                raise JobSpecError(f"strategy.params.{key}: must be a finite number >= 0, got {value!r}")
        self.inner = inner
        self.hyper = dict(hyper)
        self._m: dict[str, FloatArray] = {}
        self._v: dict[str, FloatArray] = {}
        self.steps = 0

    @property
    def name(self) -> str:
        return self.kind

    @property
    def holds_all_updates(self) -> bool:
        return self.inner.holds_all_updates

    def parameters(self) -> Mapping[str, object]:
        return {**self.hyper, "inner": self.inner.name, "inner_params": dict(self.inner.parameters())}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        # the inner round + m and v + the delta and a temporary, all in the model's floating precision
        return self.inner.peak_memory_bytes(model_bytes=model_bytes, updates=updates) + 4 * model_bytes

    def updates_behind_each_value(self, updates: int) -> int:
        return updates_behind_each_value(self.inner, updates)  # a server step mixes nothing out

    def start_round(self, global_model: ModelWeights) -> ServerOptRound:
        return ServerOptRound(optimizer=self, global_model=global_model, inner=self.inner.start_round(global_model))

    # --- state -----------------------------------------------------------------------------
    def state_dict(self) -> ModelWeights:
        """m/<name>, v/<name> (when used) and the step count, as arrays (to be sealed with the checkpoint)."""
        arrays: dict[str, Array] = {f"m/{n}": a.copy() for n, a in self._m.items()}
        arrays.update({f"v/{n}": a.copy() for n, a in self._v.items()})
        arrays[_STEP_KEY] = np.array(self.steps, dtype=np.int64)
        return ModelWeights(arrays)

    def load_state_dict(self, state: ModelWeights) -> None:
        """Restore what `state_dict` returned."""
        if _STEP_KEY not in state:
            raise JobSpecError("server optimizer state lacks its step count")
        m = {k[2:]: _float_copy(a) for k, a in state.items() if k.startswith("m/")}
        v = {k[2:]: _float_copy(a) for k, a in state.items() if k.startswith("v/")}
        self._m, self._v, self.steps = m, v, int(state[_STEP_KEY])

    # --- the rule --------------------------------------------------------------------------
    def step_inplace(self, name: str, delta: FloatArray) -> FloatArray:
        """Turn the pseudo-gradient `delta` (float64, may be overwritten) into the step added to the model."""
        raise NotImplementedError

    def _moment(self, store: dict[str, FloatArray], name: str, like: FloatArray, fill: float = 0.0) -> FloatArray:
        arr = store.get(name)
        if arr is None:
            arr = np.full(like.shape, fill, dtype=like.dtype)
            store[name] = arr
        return arr


class FedAvgM(ServerOptimizer):
    """Server momentum (Hsu et al. 2019)."""

    kind = "fedavgm"

    def __init__(self, *, inner: AggregationStrategy, server_lr: float = 1.0, momentum: float = 0.9) -> None:
        super().__init__(inner=inner, server_lr=server_lr, momentum=momentum)

    def step_inplace(self, name: str, delta: FloatArray) -> FloatArray:
        m = self._moment(self._m, name, delta)
        m *= self.hyper["momentum"]
        m += delta
        return np.multiply(m, self.hyper["server_lr"], out=delta)


class _Adaptive(ServerOptimizer):
    def __init__(self, *, inner: AggregationStrategy, eta: float, beta1: float, beta2: float, tau: float) -> None:
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise JobSpecError("strategy.params.beta1 and beta2 must lie in [0, 1)")
        if not tau > 0:
            raise JobSpecError(f"strategy.params.tau: must be positive, got {tau!r}")
        super().__init__(inner=inner, eta=eta, beta1=beta1, beta2=beta2, tau=tau)

    def _second_moment_inplace(self, v: FloatArray, delta_sq: FloatArray) -> None:
        raise NotImplementedError

    def step_inplace(self, name: str, delta: FloatArray) -> FloatArray:
        tau = self.hyper["tau"]
        b1 = self.hyper["beta1"]
        m = self._moment(self._m, name, delta)
        m *= b1
        m += (1.0 - b1) * delta
        v = self._moment(self._v, name, delta, fill=tau * tau)  # v_{-1} = tau^2 (Reddi et al., Alg. 2)
        np.multiply(delta, delta, out=delta)
        self._second_moment_inplace(v, delta)
        np.sqrt(v, out=delta)
        delta += tau
        np.divide(m, delta, out=delta)
        delta *= self.hyper["eta"]
        return delta


class FedAdagrad(_Adaptive):
    kind = "fedadagrad"

    def __init__(
        self,
        *,
        inner: AggregationStrategy,
        eta: float = 0.1,
        beta1: float = 0.0,
        beta2: float = 0.0,
        tau: float = 1e-9,
    ) -> None:
        super().__init__(inner=inner, eta=eta, beta1=beta1, beta2=beta2, tau=tau)

    def _second_moment_inplace(self, v: FloatArray, delta_sq: FloatArray) -> None:
        v += delta_sq


class FedAdam(_Adaptive):
    kind = "fedadam"

    def __init__(
        self,
        *,
        inner: AggregationStrategy,
        eta: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-9,
    ) -> None:
        super().__init__(inner=inner, eta=eta, beta1=beta1, beta2=beta2, tau=tau)

    def _second_moment_inplace(self, v: FloatArray, delta_sq: FloatArray) -> None:
        b2 = self.hyper["beta2"]
        v *= b2
        v += (1.0 - b2) * delta_sq


class FedYogi(_Adaptive):
    kind = "fedyogi"

    def __init__(
        self,
        *,
        inner: AggregationStrategy,
        eta: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
    ) -> None:
        super().__init__(inner=inner, eta=eta, beta1=beta1, beta2=beta2, tau=tau)

    def _second_moment_inplace(self, v: FloatArray, delta_sq: FloatArray) -> None:
        v -= (1.0 - self.hyper["beta2"]) * delta_sq * np.sign(v - delta_sq)


class ServerOptRound:
    """Delegates folds to the inner round; finalize applies one optimizer step to the inner mean."""

    def __init__(self, *, optimizer: ServerOptimizer, global_model: ModelWeights, inner: RoundAggregator) -> None:
        self._opt = optimizer
        self._global = global_model
        self._inner = inner
        self._finalized = False

    @property
    def contributions(self) -> int:
        return self._inner.contributions

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        self._inner.fold_inplace(update, weight=weight)

    def finalize(self) -> ModelWeights:
        if self._finalized:
            raise RoundStateError("round already finalized")
        mean = self._inner.finalize()
        self._finalized = True
        out: dict[str, Array] = {}
        for name, base in self._global.items():
            if base.dtype.kind != "f":
                out[name] = mean[name]
                continue
            work = accumulator_dtype(base.dtype)
            delta: FloatArray = np.subtract(mean[name], base, dtype=work)
            step = self._opt.step_inplace(name, delta)
            out[name] = np.add(base, step, dtype=work).astype(base.dtype, copy=False)
        self._opt.steps += 1
        return ModelWeights(out)


# strategy.name -> its optimizer; enclave/strategies.py builds a job's server optimizer from here
SERVER_OPTIMIZERS: Final[dict[str, type[ServerOptimizer]]] = {
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
}


def _float_copy(a: Array) -> FloatArray:
    if a.dtype.kind != "f":
        raise JobSpecError(f"server optimizer state: expected a floating array, got {a.dtype}")
    return np.array(a, dtype=a.dtype, copy=True)

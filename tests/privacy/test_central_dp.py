"""The DP wrapper: clipping bounds every contribution, the noise has the promised law, rounds are accounted."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from enclavefl.aggregation import FedAvg
from enclavefl.aggregation.base import RoundAggregator
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import PrivacyBudgetExceeded
from enclavefl.privacy import CentralDP, ChaCha20Gaussian, DpParams
from enclavefl.privacy import epsilon as dp_epsilon

CLIP = 0.5


class RecordingRound:
    """An inner round that keeps copies of what the DP wrapper folds into it, then averages them."""

    def __init__(self, global_model: ModelWeights, seen: list[tuple[ModelWeights, float]]) -> None:
        self._inner = FedAvg(weighted=False).start_round(global_model)
        self._seen = seen

    @property
    def contributions(self) -> int:
        return self._inner.contributions

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        self._seen.append((update.copy(), weight))
        self._inner.fold_inplace(update, weight=weight)

    def finalize(self) -> ModelWeights:
        return self._inner.finalize()


class RecordingMean:
    def __init__(self) -> None:
        self.seen: list[tuple[ModelWeights, float]] = []

    name = "recording-mean"
    holds_all_updates = False

    def parameters(self) -> Mapping[str, object]:
        return {}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        return 2 * model_bytes

    def start_round(self, global_model: ModelWeights) -> RoundAggregator:
        return RecordingRound(global_model, self.seen)


def dp_params(sigma: float = 1.0, budget: float | None = None, rounds: int = 10) -> DpParams:
    return dp_epsilon.dp_params(
        clip_norm=CLIP, noise_multiplier=sigma, delta=1e-5, epsilon_budget=budget, rounds=rounds
    )


def epsilon_after(params: DpParams, rounds: int) -> float:
    return params.epsilon_schedule[rounds - 1]


def global_model(size: int = 6) -> ModelWeights:
    return ModelWeights(
        {
            "w": np.linspace(-1, 1, size, dtype=np.float32).reshape(2, -1),
            "b": np.ones(3, dtype=np.float32),
            "count": np.array(7, dtype=np.int64),
        }
    )


def shifted(base: ModelWeights, scale: float, seed: int) -> ModelWeights:
    rng = np.random.default_rng(seed)  # test DATA, not noise
    out = {}
    for n, a in base.items():
        if a.dtype.kind == "f":
            arr = a + scale * rng.standard_normal(a.shape).astype(a.dtype)
            arr.setflags(write=False)  # decoded updates are read-only views
            out[n] = arr
        else:
            out[n] = np.array(a + 100)
    return ModelWeights(out)


def delta_norm(update: ModelWeights, base: ModelWeights) -> float:
    return float(
        np.sqrt(sum(np.sum((update[n].astype(np.float64) - base[n]) ** 2) for n in base if base[n].dtype.kind == "f"))
    )


def test_clipping_bounds_every_contributions_norm() -> None:
    base = global_model()
    inner = RecordingMean()
    dp = CentralDP(inner=inner, params=dp_params(), noise=ChaCha20Gaussian(key=bytes(32)))
    rnd = dp.start_round(base)
    updates = [shifted(base, scale, seed) for seed, scale in enumerate([0.001, 0.05, 1.0, 10.0, 1e4])]

    for u in updates:
        rnd.fold_inplace(u, weight=123.0)

    norms = [delta_norm(folded, base) for folded, _ in inner.seen]
    assert all(n <= CLIP * (1 + 1e-6) for n in norms)
    assert norms[-1] == pytest.approx(CLIP, rel=1e-5)  # a large update is scaled to the clip norm...
    assert norms[0] == pytest.approx(delta_norm(updates[0], base), rel=1e-4)  # ...a small one is untouched
    assert rnd.clipped == 3


def test_example_counts_are_ignored_and_integer_tensors_stay_at_the_global_value() -> None:
    base = global_model()
    inner = RecordingMean()
    rnd = CentralDP(inner=inner, params=dp_params(), noise=ChaCha20Gaussian(key=bytes(32))).start_round(base)

    rnd.fold_inplace(shifted(base, 0.01, 1), weight=1000.0)
    result = rnd.finalize()

    assert [w for _, w in inner.seen] == [1.0]
    assert inner.seen[0][0]["count"] == base["count"]
    assert result["count"] == base["count"]
    assert result["w"].dtype == np.float32


@pytest.mark.parametrize("contributions", [1, 5])
def test_noise_on_the_release_has_mean_zero_and_std_sigma_clip_over_n(contributions: int) -> None:
    sigma = 2.0
    size = 400_000
    base = ModelWeights({"w": np.zeros(size, dtype=np.float64)})
    rnd = CentralDP(
        inner=FedAvg(weighted=False), params=dp_params(sigma), noise=ChaCha20Gaussian(key=bytes(32))
    ).start_round(base)
    for _ in range(contributions):
        rnd.fold_inplace(base, weight=1.0)  # zero deltas: the release is pure noise

    noise = rnd.finalize()["w"]

    expected_std = sigma * CLIP / contributions
    assert abs(noise.mean()) < 5 * expected_std / np.sqrt(size)
    assert noise.std() == pytest.approx(expected_std, rel=5 * np.sqrt(2 / size))


def test_release_is_the_mean_of_clipped_deltas_plus_noise() -> None:
    base = global_model()
    updates = [shifted(base, 0.01, s) for s in range(4)]
    expected = FedAvg(weighted=False).start_round(base)
    for u in updates:
        expected.fold_inplace(u, weight=1.0)
    mean = expected.finalize()
    # no clipping, negligible noise (the schedule is not used here: a placeholder)
    tiny = DpParams(clip_norm=100.0, noise_multiplier=1e-9, delta=1e-5, epsilon_schedule=(1e9,))
    rnd = CentralDP(inner=FedAvg(weighted=False), params=tiny, noise=ChaCha20Gaussian(key=bytes(32))).start_round(base)

    for u in updates:
        rnd.fold_inplace(u, weight=1.0)

    released = rnd.finalize()
    for name in ("w", "b"):
        np.testing.assert_allclose(released[name], mean[name], atol=1e-6)


def test_each_released_round_is_accounted_and_the_budget_stops_before_it_is_exceeded() -> None:
    budget = (epsilon_after(dp_params(), 2) + epsilon_after(dp_params(), 3)) / 2
    dp = CentralDP(inner=FedAvg(weighted=False), params=dp_params(budget=budget), noise=ChaCha20Gaussian(key=bytes(32)))
    base = global_model()
    for _ in range(2):
        rnd = dp.start_round(base)
        rnd.fold_inplace(base, weight=1.0)
        base = rnd.finalize()

    with pytest.raises(PrivacyBudgetExceeded):
        dp.start_round(base)
    spent = dp.privacy_spent()
    assert spent.rounds == 2
    assert spent.epsilon == epsilon_after(dp_params(), 2)


def test_a_round_that_is_never_released_costs_no_privacy() -> None:
    dp = CentralDP(inner=FedAvg(weighted=False), params=dp_params(), noise=ChaCha20Gaussian(key=bytes(32)))

    dp.start_round(global_model()).fold_inplace(global_model(), weight=1.0)  # abandoned: fewer than K

    assert dp.privacy_spent().rounds == 0
    assert dp.privacy_spent().epsilon == 0.0


def test_dp_parameters_appear_in_the_strategy_parameters() -> None:
    dp = CentralDP(inner=FedAvg(weighted=False), params=dp_params(budget=8.0))

    p = dp.parameters()

    assert p["clip_norm"] == CLIP and p["noise_multiplier"] == 1.0 and p["epsilon_budget"] == 8.0
    assert p["inner"] == "fedavg"

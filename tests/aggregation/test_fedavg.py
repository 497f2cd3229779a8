"""Streaming FedAvg equals the batch mean, weighted or not, for every dtype the models use."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.aggregation import FedAvg
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import NotEnoughContributions, RoundStateError


def weights(rng: np.random.Generator, scale: float = 1.0) -> ModelWeights:
    return ModelWeights(
        {
            "w": (rng.standard_normal((4, 5)) * scale).astype(np.float32),
            "d": rng.standard_normal(3).astype(np.float64),
            "count": np.array(int(rng.integers(0, 100)), dtype=np.int64),
        }
    )


@pytest.mark.parametrize("weighted", [True, False])
def test_streaming_fold_equals_batch_mean(weighted: bool) -> None:
    rng = np.random.default_rng(0)  # test data only
    global_model = weights(rng)
    updates = [weights(rng) for _ in range(7)]
    counts = [int(c) for c in rng.integers(1, 50, size=7)]
    expected_coeffs = np.array(counts if weighted else [1] * 7, dtype=np.float64)
    expected_coeffs /= expected_coeffs.sum()

    round_ = FedAvg(weighted=weighted).start_round(global_model)
    for u, n in zip(updates, counts, strict=True):
        round_.fold_inplace(u, weight=n)
    result = round_.finalize()

    for name in ("w", "d"):
        expected = sum(c * u[name].astype(np.float64) for c, u in zip(expected_coeffs, updates, strict=True))
        np.testing.assert_allclose(result[name], expected, rtol=1e-5, atol=1e-6)
        assert result[name].dtype == global_model[name].dtype
    expected_count = sum(c * float(u["count"]) for c, u in zip(expected_coeffs, updates, strict=True))
    assert result["count"] == np.rint(expected_count)
    assert result["count"].dtype == np.int64
    assert round_.contributions == 7


def test_global_model_and_updates_are_not_modified() -> None:
    rng = np.random.default_rng(1)
    global_model, update = weights(rng), weights(rng)
    g0, u0 = global_model.copy(), update.copy()

    round_ = FedAvg().start_round(global_model)
    round_.fold_inplace(update, weight=2)
    round_.finalize()

    assert global_model.sha256() == g0.sha256()
    assert update.sha256() == u0.sha256()


def test_empty_round_releases_nothing() -> None:
    round_ = FedAvg().start_round(weights(np.random.default_rng(2)))
    with pytest.raises(NotEnoughContributions):
        round_.finalize()


def test_no_fold_after_finalize_and_weights_must_be_positive() -> None:
    rng = np.random.default_rng(3)
    round_ = FedAvg().start_round(weights(rng))
    with pytest.raises(ValueError, match="positive finite"):
        round_.fold_inplace(weights(rng), weight=0)
    round_.fold_inplace(weights(rng), weight=1)
    round_.finalize()
    with pytest.raises(RoundStateError):
        round_.fold_inplace(weights(rng), weight=1)


def test_memory_bound_is_independent_of_update_count() -> None:
    strategy = FedAvg()
    assert strategy.peak_memory_bytes(model_bytes=100, updates=10) == strategy.peak_memory_bytes(
        model_bytes=100, updates=1000
    )

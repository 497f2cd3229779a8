"""Robust rules: median, trimmed mean, Krum and Multi-Krum on hand-checkable cases; their memory bound."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.aggregation import FedAvg
from enclavefl.aggregation.memory import check_memory_budget, round_memory_bytes
from enclavefl.aggregation.robust import CHUNK_ELEMENTS, CoordinateMedian, Krum, TrimmedMean, krum_selection
from enclavefl.core.job import StrategySpec
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.strategies import build_strategy
from enclavefl.errors import ConfigError, JobSpecError, MemoryBudgetExceeded, NotEnoughContributions


def weights(values: list[float], extra: float = 0.0) -> ModelWeights:
    return ModelWeights({"w": np.array(values, dtype=np.float32), "b": np.array([extra], dtype=np.float32)})


ZERO = weights([0.0, 0.0, 0.0])


def aggregate(strategy: object, updates: list[ModelWeights], base: ModelWeights = ZERO) -> ModelWeights:
    rnd = strategy.start_round(base)  # type: ignore[attr-defined]
    for u in updates:
        rnd.fold_inplace(u, weight=1.0)
    return rnd.finalize()  # type: ignore[no-any-return]


def test_median_takes_the_middle_value_of_every_coordinate() -> None:
    updates = [weights([1, 10, -3]), weights([2, -50, 0]), weights([1000, 0, 1])]

    result = aggregate(CoordinateMedian(), updates)

    np.testing.assert_array_equal(result["w"], [2, 0, 0])
    assert result["w"].dtype == np.float32


def test_trimmed_mean_drops_the_extremes_on_each_side() -> None:
    updates = [weights([v, -v, 0]) for v in (1.0, 2.0, 3.0, 4.0, 1000.0)]

    result = aggregate(TrimmedMean(beta=0.2), updates)  # drops one value per side out of five

    np.testing.assert_allclose(result["w"], [3.0, -3.0, 0.0])


def test_held_updates_are_copied_so_the_caller_may_reuse_its_buffers() -> None:
    buffer = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    rnd = CoordinateMedian().start_round(ZERO)
    for value in (1.0, 2.0, 3.0):
        buffer[:] = value
        rnd.fold_inplace(ModelWeights({"w": buffer, "b": np.zeros(1, dtype=np.float32)}), weight=1.0)

    np.testing.assert_array_equal(rnd.finalize()["w"], [2.0, 2.0, 2.0])


def test_coordinatewise_rules_handle_tensors_larger_than_one_chunk() -> None:
    size = CHUNK_ELEMENTS + 17
    base = ModelWeights({"w": np.zeros(size, dtype=np.float32)})
    updates = [ModelWeights({"w": np.full(size, v, dtype=np.float32)}) for v in (5.0, -1.0, 2.0)]

    np.testing.assert_array_equal(aggregate(CoordinateMedian(), updates, base)["w"], np.full(size, 2.0))


def test_integer_tensors_are_rounded_back_to_their_dtype() -> None:
    base = ModelWeights({"n": np.array([0, 0], dtype=np.int64)})
    updates = [ModelWeights({"n": np.array(v, dtype=np.int64)}) for v in ([1, 4], [2, 5], [3, 100])]

    result = aggregate(TrimmedMean(beta=0.34), updates, base)

    assert result["n"].dtype == np.int64
    np.testing.assert_array_equal(result["n"], [2, 5])


def honest_and_outlier() -> list[ModelWeights]:
    honest = [weights([1.0 + 0.01 * i, 1.0, 1.0]) for i in range(4)]
    return [*honest, weights([-40.0, 60.0, 9.0])]


def test_krum_selects_an_honest_update_and_never_the_outlier() -> None:
    updates = honest_and_outlier()

    chosen = krum_selection(ZERO, updates, byzantine=1, select=1)
    result = aggregate(Krum(byzantine=1, select=1), updates)

    assert chosen[0] in range(4)
    np.testing.assert_allclose(result["w"], updates[chosen[0]]["w"])


def test_multikrum_averages_the_best_scored_updates() -> None:
    updates = honest_and_outlier()

    result = aggregate(Krum(byzantine=1, select=4), updates)

    np.testing.assert_allclose(result["w"], [1.015, 1.0, 1.0], rtol=1e-6)


def test_krum_refuses_to_aggregate_fewer_than_2f_plus_3_updates() -> None:
    with pytest.raises(NotEnoughContributions, match="at least 5"):
        aggregate(Krum(byzantine=1), honest_and_outlier()[:4])


def test_robust_rules_bound_the_effect_of_one_scaled_update_while_fedavg_does_not() -> None:
    honest = [weights([1.0, 1.0, 1.0], extra=0.1 * i) for i in range(4)]
    attacker = weights([-1e4, 1e4, -1e4])
    updates = [*honest, attacker]

    mean = aggregate(FedAvg(weighted=False), updates)
    robust = [aggregate(s, updates) for s in (CoordinateMedian(), TrimmedMean(beta=0.2), Krum(byzantine=1))]

    assert np.abs(mean["w"] - 1.0).max() > 1000
    for r in robust:
        assert np.abs(r["w"] - 1.0).max() < 1e-6


@pytest.mark.parametrize("strategy", [CoordinateMedian(), TrimmedMean(), Krum()])
def test_memory_bound_grows_with_the_number_of_updates(strategy: object) -> None:
    small = strategy.peak_memory_bytes(model_bytes=10**6, updates=5)  # type: ignore[attr-defined]
    large = strategy.peak_memory_bytes(model_bytes=10**6, updates=50)  # type: ignore[attr-defined]

    assert strategy.holds_all_updates  # type: ignore[attr-defined]
    assert small >= 6 * 10**6
    assert large >= 51 * 10**6


def test_memory_check_refuses_a_job_whose_robust_rule_would_not_fit() -> None:
    model_bytes, updates = 100 * 2**20, 20
    limit = 1024 * 2**20  # 1 GiB: FedAvg needs ~3x the model, the median ~22x

    need = check_memory_budget(FedAvg(), model_bytes=model_bytes, updates=updates, limit_bytes=limit)
    with pytest.raises(MemoryBudgetExceeded, match="holds every update") as info:
        check_memory_budget(CoordinateMedian(), model_bytes=model_bytes, updates=updates, limit_bytes=limit)

    assert need == round_memory_bytes(FedAvg(), model_bytes=model_bytes, updates=updates) <= limit
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (StrategySpec(name="median", params={}), CoordinateMedian()),
        (StrategySpec(name="trimmed_mean", params={"beta": 0.1}), TrimmedMean(beta=0.1)),
        (StrategySpec(name="krum", params={"byzantine": 2}), Krum(byzantine=2, select=1)),
        (StrategySpec(name="multikrum", params={"byzantine": 1, "select": 3}), Krum(byzantine=1, select=3)),
    ],
)
def test_job_strategy_names_build_the_robust_rules(spec: StrategySpec, expected: object) -> None:
    assert build_strategy(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        StrategySpec(name="trimmed_mean", params={"beta": 0.5}),
        StrategySpec(name="krum", params={"select": 2}),
        StrategySpec(name="multikrum", params={"select": 1}),
        StrategySpec(name="median", params={"weighted": True}),
        StrategySpec(name="krum", params={"byzantine": 1.5}),
    ],
)
def test_invalid_robust_parameters_are_refused(spec: StrategySpec) -> None:
    with pytest.raises(JobSpecError):
        build_strategy(spec)

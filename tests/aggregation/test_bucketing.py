"""Bucketing: the random partition (complete, keyed, fresh per round), bucket means, registration, memory bound."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from dp_tables import dp_table

from enclavefl.aggregation import FedAvg
from enclavefl.aggregation.bucketing import Bucketing, bucket_count, bucket_partition, random_permutation
from enclavefl.aggregation.robust import CoordinateMedian, Krum, TrimmedMean
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.strategies import build_job_strategy, build_strategy
from enclavefl.errors import JobSpecError, NotEnoughContributions, RoundStateError

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
ZERO = ModelWeights({"w": np.zeros(3, dtype=np.float32)})


def w(weights: ModelWeights) -> npt.NDArray[np.float64]:
    return np.asarray(weights["w"], dtype=np.float64)


def update(*values: float) -> ModelWeights:
    return ModelWeights({"w": np.array(values, dtype=np.float32)})


class Recorder:
    """An inner strategy that records what it was given and returns the first input."""

    def __init__(self) -> None:
        self.seen: list[ModelWeights] = []

    name = "recorder"
    holds_all_updates = True
    contributions = 0

    def parameters(self) -> dict[str, object]:
        return {"x": 1}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        return 1000 * updates

    def start_round(self, global_model: ModelWeights) -> Recorder:
        return self

    def fold_inplace(self, u: ModelWeights, *, weight: float) -> None:
        self.seen.append(u.copy())

    def finalize(self) -> ModelWeights:
        return self.seen[0]


@pytest.mark.parametrize(("n", "size"), [(5, 2), (6, 2), (7, 3), (8, 3), (1, 2), (4, 1), (3, 5)])
def test_partition_covers_every_update_exactly_once_in_floor_n_over_s_buckets_none_smaller_than_s(
    n: int, size: int
) -> None:
    buckets = bucket_partition(n, size, key=KEY_A)

    assert sorted(i for b in buckets for i in b) == list(range(n))
    assert len(buckets) == bucket_count(n, size) == max(1, n // size)
    # no small last bucket: a rule that releases one bucket's mean releases a mean of >= min(size, n) updates
    assert all(min(size, n) <= len(b) for b in buckets)
    assert max(len(b) for b in buckets) - min(len(b) for b in buckets) <= 1


def test_partition_is_deterministic_for_a_fixed_key_and_nonce() -> None:
    assert bucket_partition(20, 2, key=KEY_A, nonce=3) == bucket_partition(20, 2, key=KEY_A, nonce=3)


def test_different_keys_or_rounds_give_different_partitions() -> None:
    base = random_permutation(20, key=KEY_A, nonce=0)

    assert random_permutation(20, key=KEY_B, nonce=0) != base
    assert random_permutation(20, key=KEY_A, nonce=1) != base


def test_every_update_lands_in_every_bucket_position_over_many_keys() -> None:
    # a coarse uniformity check: with 300 keys, each of 5 updates is first at least ~30 times (expected 60)
    firsts = [random_permutation(5, key=k.to_bytes(32, "little"), nonce=0)[0] for k in range(300)]

    counts = np.bincount(firsts, minlength=5)

    assert counts.min() >= 30


def test_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Bucketing(inner=CoordinateMedian(), key=b"short")


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_bucket_size_must_be_a_positive_integer(size: object) -> None:
    with pytest.raises(JobSpecError, match="bucket_size"):
        Bucketing(inner=CoordinateMedian(), bucket_size=size)  # type: ignore[arg-type]


def test_inner_rule_receives_the_unweighted_mean_of_each_bucket() -> None:
    updates = [update(v, 10 * v, -v) for v in (1.0, 2.0, 4.0, 8.0, 16.0)]
    recorder = Recorder()
    strategy = Bucketing(inner=recorder, bucket_size=2, key=KEY_A)
    expected = bucket_partition(5, 2, key=KEY_A, nonce=0)

    rnd = strategy.start_round(ZERO)
    for u in updates:
        rnd.fold_inplace(u, weight=100.0 if u["w"][0] == 1.0 else 1.0)  # claimed weights are ignored
    rnd.finalize()

    assert len(recorder.seen) == 2  # buckets of 3 and 2
    for bucket, seen in zip(expected, recorder.seen, strict=True):
        mean = np.mean(np.stack([w(updates[i]) for i in bucket]), axis=0)
        np.testing.assert_allclose(w(seen), mean, rtol=1e-6)


def test_held_updates_are_copied_so_the_caller_may_reuse_its_buffers() -> None:
    buffer = np.zeros(3, dtype=np.float32)
    rnd = Bucketing(inner=FedAvg(weighted=False), bucket_size=2, key=KEY_A).start_round(ZERO)
    for value in (1.0, 2.0, 3.0, 6.0):
        buffer[:] = value
        rnd.fold_inplace(ModelWeights({"w": buffer}), weight=1.0)
    buffer[:] = -1000.0

    np.testing.assert_allclose(w(rnd.finalize()), np.full(3, 3.0))  # two equal buckets: mean of bucket means


def test_bucketed_median_removes_one_huge_update_among_seven() -> None:
    updates = [update(1.0, 1.0, 1.0)] * 6 + [update(1e6, -1e6, 1e6)]

    result = aggregate(Bucketing(inner=CoordinateMedian(), bucket_size=2, key=KEY_A), updates)  # 3 buckets

    np.testing.assert_allclose(w(result), np.ones(3))


def test_fixed_key_gives_the_same_rounds_and_rounds_differ_from_each_other() -> None:
    def partitions(strategy: Bucketing) -> list[list[float]]:
        recorded = []
        for _ in range(4):
            recorder = Recorder()
            strategy.inner = recorder
            rnd = strategy.start_round(ZERO)
            for v in range(6):
                rnd.fold_inplace(update(2.0**v, 0, 0), weight=1.0)
            rnd.finalize()
            recorded.append([float(s["w"][0]) for s in recorder.seen])
        return recorded

    first = partitions(Bucketing(inner=Recorder(), bucket_size=2, key=KEY_A))
    again = partitions(Bucketing(inner=Recorder(), bucket_size=2, key=KEY_A))

    assert first == again
    assert len({tuple(r) for r in first}) > 1  # a new partition every round


def test_round_refuses_late_folds_a_second_finalize_and_an_empty_round() -> None:
    strategy = Bucketing(inner=CoordinateMedian(), key=KEY_A)
    empty = strategy.start_round(ZERO)
    with pytest.raises(NotEnoughContributions):
        empty.finalize()

    rnd = strategy.start_round(ZERO)
    rnd.fold_inplace(update(1, 2, 3), weight=1.0)
    rnd.finalize()
    with pytest.raises(RoundStateError):
        rnd.fold_inplace(update(1, 2, 3), weight=1.0)
    with pytest.raises(RoundStateError):
        rnd.finalize()


def test_krum_needs_enough_buckets_not_enough_updates() -> None:
    # 7 updates in buckets of 2 are 3 bucket means: Krum with f = 1 needs 5 inputs
    with pytest.raises(NotEnoughContributions, match="at least 5"):
        aggregate(Bucketing(inner=Krum(byzantine=1), bucket_size=2, key=KEY_A), [update(1, 1, 1)] * 7)


def test_peak_memory_counts_the_held_updates_plus_the_inner_round_over_the_buckets() -> None:
    strategy = Bucketing(inner=Recorder(), bucket_size=2)

    assert strategy.holds_all_updates
    assert strategy.peak_memory_bytes(model_bytes=10, updates=7) == 8 * 10 + 1000 * 3


def test_parameters_name_the_inner_rule_and_never_the_key() -> None:
    strategy = Bucketing(inner=TrimmedMean(beta=0.4), bucket_size=3, key=KEY_A)

    assert strategy.parameters() == {"bucket_size": 3, "inner": "trimmed_mean", "inner_params": {"beta": 0.4}}


@pytest.mark.parametrize(
    ("name", "params", "inner"),
    [
        ("median", {}, CoordinateMedian),
        ("trimmed_mean", {"beta": 0.4}, TrimmedMean),
        ("krum", {"byzantine": 0}, Krum),
        ("multikrum", {"byzantine": 0, "select": 2}, Krum),
    ],
)
def test_bucket_size_param_wraps_every_robust_rule(name: str, params: dict[str, object], inner: type) -> None:
    strategy = build_strategy(StrategySpec(name=name, params={**params, "bucket_size": 2}))

    assert isinstance(strategy, Bucketing) and isinstance(strategy.inner, inner)
    assert strategy.bucket_size == 2


@pytest.mark.parametrize("params", [{"bucket_size": 0}, {"bucket_size": 2.0}, {"bucket_size": "2"}])
def test_invalid_bucket_size_param_is_refused(params: dict[str, object]) -> None:
    with pytest.raises(JobSpecError, match="bucket_size"):
        build_strategy(StrategySpec(name="median", params=params))


def test_bucket_size_is_refused_on_fedavg() -> None:
    with pytest.raises(JobSpecError, match="bucket_size"):
        build_strategy(StrategySpec(name="fedavg", params={"bucket_size": 2}))


def test_bucketed_robust_rule_is_still_refused_with_central_dp() -> None:
    job = JobSpec(
        name="j",
        rounds=1,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="median", params={"bucket_size": 2}),
        min_contributions=1,
        data_owners=(DataOwnerSpec(name="a"),),
        dp=dp_table(1),
    )

    with pytest.raises(JobSpecError, match="central DP"):
        build_job_strategy(job)


def aggregate(strategy: Bucketing, updates: list[ModelWeights]) -> ModelWeights:
    rnd = strategy.start_round(ZERO)
    for u in updates:
        rnd.fold_inplace(u, weight=1.0)
    return rnd.finalize()

"""Centered clipping: each update moves the output by at most tau / n, FedAvg when nothing is clipped, history.

The reference below is the paper's formula written out with numpy over held updates; the strategy folds each
update as it arrives and must give the same numbers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from dp_tables import dp_table
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavefl.aggregation import FedAvg
from enclavefl.aggregation import centered_clipping as cc_module
from enclavefl.aggregation.centered_clipping import CenteredClipping
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.strategies import build_job_strategy, build_strategy
from enclavefl.enclave.strategy_state import restore_strategy_state, strategy_state
from enclavefl.errors import JobSpecError, NotEnoughContributions, RoundStateError

F64 = npt.NDArray[np.float64]
GLOBAL = ModelWeights({"w": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "b": np.zeros(5, np.float32)})


def flat(weights: ModelWeights) -> F64:
    return np.concatenate([np.asarray(weights[n], dtype=np.float64).reshape(-1) for n in ("w", "b")])


def unflat(vector: F64) -> ModelWeights:
    return ModelWeights({"w": vector[:12].reshape(3, 4).astype(np.float32), "b": vector[12:].astype(np.float32)})


def aggregate(strategy: CenteredClipping, updates: list[ModelWeights], base: ModelWeights = GLOBAL) -> ModelWeights:
    rnd = strategy.start_round(base)
    for i, u in enumerate(updates):
        rnd.fold_inplace(u, weight=float(i + 1))  # claimed counts differ: they must not matter
    return rnd.finalize()


def reference(updates: list[F64], base: F64, step: F64, tau: float) -> F64:
    """step' = v + (1/n) sum clip_tau(d_i - v); the new model is base + step'."""
    clipped = []
    for u in updates:
        diff = (u - base) - step
        norm = float(np.linalg.norm(diff))
        clipped.append(diff * min(1.0, tau / norm) if norm > 0 else diff)
    return base + step + np.mean(clipped, axis=0)


vectors = st.lists(
    st.lists(st.floats(-50, 50, allow_nan=False, width=32), min_size=17, max_size=17), min_size=1, max_size=7
)


@settings(max_examples=60, deadline=None)
@given(raw=vectors, tau=st.floats(0.01, 20.0), victim=st.integers(0, 6), far=st.floats(-1e6, 1e6, width=32))
def test_one_update_moves_the_output_at_most_2_tau_over_n_whatever_it_is(
    raw: list[list[float]], tau: float, victim: int, far: float
) -> None:
    updates = [unflat(np.array(r, dtype=np.float64)) for r in raw]
    changed = list(updates)
    changed[victim % len(updates)] = unflat(np.full(17, far))

    a = flat(aggregate(CenteredClipping(tau=tau), updates))
    b = flat(aggregate(CenteredClipping(tau=tau), changed))

    # each update's contribution lies within tau of the center, scaled by 1/n: swapping one moves <= 2 tau / n
    assert np.linalg.norm(a - b) <= 2 * tau / len(updates) * (1 + 1e-4) + 1e-4


@settings(max_examples=40, deadline=None)
@given(raw=vectors, tau=st.floats(0.01, 20.0))
def test_the_output_stays_within_tau_of_the_center(raw: list[list[float]], tau: float) -> None:
    updates = [unflat(np.array(r, dtype=np.float64)) for r in raw]

    out = flat(aggregate(CenteredClipping(tau=tau), updates))

    assert np.linalg.norm(out - flat(GLOBAL)) <= tau * (1 + 1e-4) + 1e-4  # first round: the center is the model


def test_with_no_outlier_and_a_large_tau_it_is_the_unweighted_fedavg_mean() -> None:
    rng = np.random.default_rng(0)  # test data, not a secret
    updates = [unflat(flat(GLOBAL) + rng.normal(0, 0.1, 17)) for _ in range(6)]
    mean = FedAvg(weighted=False).start_round(GLOBAL)
    for u in updates:
        mean.fold_inplace(u, weight=1.0)

    np.testing.assert_allclose(flat(aggregate(CenteredClipping(tau=1e6), updates)), flat(mean.finalize()), atol=1e-6)


def test_one_huge_update_among_honest_ones_is_cut_to_tau() -> None:
    honest = [unflat(flat(GLOBAL) + 0.01 * i) for i in range(4)]
    attacker = unflat(flat(GLOBAL) + 1e5)

    out = flat(aggregate(CenteredClipping(tau=0.5), [*honest, attacker]))

    assert np.linalg.norm(out - flat(GLOBAL)) < 0.5 / 5 + 0.05  # FedAvg would have moved ~2e4


def test_rounds_follow_the_papers_formula_with_last_rounds_step_as_the_center() -> None:
    rng = np.random.default_rng(1)
    strategy, tau = CenteredClipping(tau=0.3), 0.3
    base, step = flat(GLOBAL), np.zeros(17)
    model = GLOBAL
    for _ in range(4):
        updates = [base + rng.normal(0.2, 0.4, 17) for _ in range(5)]
        expected = reference(updates, base, step, tau)

        model = aggregate(strategy, [unflat(u) for u in updates], base=model)

        np.testing.assert_allclose(flat(model), expected, rtol=1e-5, atol=1e-5)
        step, base = flat(model) - base, flat(model)
    assert strategy.rounds == 4


def test_tensors_larger_than_one_chunk_are_folded_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    updates = [unflat(flat(GLOBAL) + rng.normal(0, 1, 17)) for _ in range(3)]
    whole = flat(aggregate(CenteredClipping(tau=0.7), updates))

    monkeypatch.setattr(cc_module, "CHUNK_ELEMENTS", 5)  # 12 and 5 elements: several and partial chunks

    np.testing.assert_allclose(flat(aggregate(CenteredClipping(tau=0.7), updates)), whole, rtol=1e-6)


def test_integer_tensors_take_the_plain_mean_and_are_not_clipped() -> None:
    base = ModelWeights({"w": np.zeros(3, np.float32), "steps": np.array([10], np.int64)})
    updates = [ModelWeights({"w": np.full(3, 100.0, np.float32), "steps": np.array([v], np.int64)}) for v in (11, 13)]

    out = aggregate(CenteredClipping(tau=1.0), updates, base=base)

    assert out["steps"].dtype == np.int64 and int(out["steps"][0]) == 12
    assert np.linalg.norm(out["w"]) == pytest.approx(1.0, rel=1e-5)


def test_it_streams_memory_does_not_grow_with_the_number_of_owners() -> None:
    strategy = CenteredClipping(tau=1.0)

    assert not strategy.holds_all_updates
    assert strategy.peak_memory_bytes(model_bytes=10**6, updates=5) == strategy.peak_memory_bytes(
        model_bytes=10**6, updates=5000
    )


def test_round_refuses_an_empty_finalize_late_folds_and_a_second_finalize() -> None:
    strategy = CenteredClipping(tau=1.0)
    with pytest.raises(NotEnoughContributions):
        strategy.start_round(GLOBAL).finalize()
    rnd = strategy.start_round(GLOBAL)
    rnd.fold_inplace(GLOBAL, weight=1.0)
    rnd.finalize()
    with pytest.raises(RoundStateError):
        rnd.fold_inplace(GLOBAL, weight=1.0)
    with pytest.raises(RoundStateError):
        rnd.finalize()


def test_history_survives_a_checkpoint_round_trip() -> None:
    rng = np.random.default_rng(3)
    rounds = [[unflat(flat(GLOBAL) + rng.normal(0.3, 0.5, 17)) for _ in range(4)] for _ in range(3)]
    straight = CenteredClipping(tau=0.4)
    model = aggregate(straight, rounds[0])
    accountant, state = strategy_state(straight)
    resumed = CenteredClipping(tau=0.4)
    restore_strategy_state(resumed, accountant, state)

    for updates in rounds[1:]:
        expected = aggregate(straight, updates, base=model)
        got = aggregate(resumed, updates, base=model)
        np.testing.assert_array_equal(flat(got), flat(expected))
        model = expected


@pytest.mark.parametrize("tau", [0, -1.0, float("inf"), float("nan"), True, "1"])
def test_tau_must_be_a_positive_finite_number(tau: object) -> None:
    with pytest.raises(JobSpecError, match="tau"):
        CenteredClipping(tau=tau)  # type: ignore[arg-type]


def test_registered_with_tau_in_the_job_spec_and_digest() -> None:
    def job(tau: float) -> JobSpec:
        return JobSpec(
            name="j",
            rounds=1,
            train=TrainConfig(local_steps=1),
            min_contributions=3,
            strategy=StrategySpec(name="centered_clipping", params={"tau": tau}),
            data_owners=tuple(DataOwnerSpec(name=f"o{i}") for i in range(5)),
        )

    strategy = build_job_strategy(job(0.5))

    assert isinstance(strategy, CenteredClipping) and strategy.parameters() == {"tau": 0.5}
    assert job(0.5).digest() != job(0.25).digest()


@pytest.mark.parametrize(
    ("params", "fragment"), [({}, "tau"), ({"tau": 1.0, "beta": 0.1}, "does not take beta"), ({"tau": "big"}, "tau")]
)
def test_bad_parameters_are_refused_with_the_field_named(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(JobSpecError, match=fragment):
        build_strategy(StrategySpec(name="centered_clipping", params=params))


def test_refused_with_central_dp() -> None:
    job = JobSpec(
        name="j",
        rounds=1,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="centered_clipping", params={"tau": 1.0}),
        dp=dp_table(1),
    )
    with pytest.raises(JobSpecError, match="central DP"):
        build_job_strategy(job)

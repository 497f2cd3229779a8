"""The secure worker's federated evaluation (weighted means over >= K owners, once) and its DP hooks."""

from __future__ import annotations

import numpy as np
import pytest
from dp_tables import dp_table
from two_phase import close_and_release

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.sealing import privacy_spent
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import (
    DuplicateUpdate,
    MalformedUpdate,
    NotEnoughContributions,
    NotEnrolled,
    PrivacyBudgetExceeded,
    RoundStateError,
    WrongRound,
)
from enclavefl.privacy import DpParams
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

OWNERS = ("a", "b", "c")


def model(value: float = 0.0) -> ModelWeights:
    return ModelWeights({"w": np.full(4, value, dtype=np.float32)})


def make_worker(tee: TeeBackend, *, k: int = 2, dp: dict[str, object] | None = None, rounds: int = 3) -> SecureWorker:
    initial = model()
    job = JobSpec(
        name="eval",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": dp is None}),
        min_contributions=k,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        dp=dp,
    )
    return SecureWorker(job=job, initial_model=initial)


@pytest.fixture
def tee(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> TeeBackend:
    return sim_enclave[0]


def run_round(worker: SecureWorker, owners: tuple[str, ...] = OWNERS) -> None:
    r = worker.open_round()
    for o in owners:
        worker.submit_update(
            UpdateMessage.of(owner=o, round=r, num_examples=1, payload=encode_weights(model(1.0))).incoming()
        )
    close_and_release(worker)


def test_releases_example_weighted_means_once_k_owners_reported(tee: TeeBackend) -> None:
    worker = make_worker(tee, k=2)
    run_round(worker)

    worker.evaluation.submit("a", 1, 10, {"accuracy": 0.9, "loss": 0.2})
    worker.evaluation.submit("b", 1, 30, {"accuracy": 0.5, "loss": 1.0})
    released = worker.evaluation.close()

    assert released == pytest.approx({"accuracy": 0.6, "loss": 0.8})


def test_releases_nothing_below_k_owners_but_keeps_the_reports(tee: TeeBackend) -> None:
    worker = make_worker(tee, k=2)
    run_round(worker)
    worker.evaluation.submit("a", 1, 10, {"accuracy": 0.9})

    with pytest.raises(NotEnoughContributions, match="1 owner"):
        worker.evaluation.close()
    worker.evaluation.submit("b", 1, 10, {"accuracy": 0.7})
    assert worker.evaluation.close() == pytest.approx({"accuracy": 0.8})


def test_a_round_is_released_only_once(tee: TeeBackend) -> None:
    worker = make_worker(tee, k=2)
    run_round(worker)
    worker.evaluation.submit("a", 1, 10, {"accuracy": 0.9})
    worker.evaluation.submit("b", 1, 10, {"accuracy": 0.7})
    worker.evaluation.close()

    with pytest.raises(RoundStateError):  # a later release over a,b,c would reveal c's numbers
        worker.evaluation.submit("c", 1, 10, {"accuracy": 0.1})
    with pytest.raises(RoundStateError):
        worker.evaluation.close()


def test_the_initial_model_can_be_evaluated_as_round_zero(tee: TeeBackend) -> None:
    worker = make_worker(tee, k=1)

    worker.evaluation.submit("a", 0, 5, {"loss": 2.3})

    assert worker.evaluation.close() == {"loss": 2.3}


@pytest.mark.parametrize(
    ("owner", "round_index", "n", "metrics", "error"),
    [
        ("mallory", 1, 10, {"accuracy": 0.5}, NotEnrolled),
        ("a", 2, 10, {"accuracy": 0.5}, WrongRound),
        ("a", 1, 0, {"accuracy": 0.5}, MalformedUpdate),
        ("a", 1, 10, {"accuracy": float("nan")}, MalformedUpdate),
        ("a", 1, 10, {}, MalformedUpdate),
    ],
)
def test_bad_evaluation_reports_are_refused(
    tee: TeeBackend, owner: str, round_index: int, n: int, metrics: dict[str, float], error: type[Exception]
) -> None:
    worker = make_worker(tee)
    run_round(worker)

    with pytest.raises(error):
        worker.evaluation.submit(owner, round_index, n, metrics)


def test_duplicate_and_mismatched_reports_are_refused(tee: TeeBackend) -> None:
    worker = make_worker(tee)
    run_round(worker)
    worker.evaluation.submit("a", 1, 10, {"accuracy": 0.5})

    with pytest.raises(DuplicateUpdate):
        worker.evaluation.submit("a", 1, 10, {"accuracy": 0.5})
    with pytest.raises(MalformedUpdate, match="exactly"):  # a metric only b reports would leak b's value
        worker.evaluation.submit("b", 1, 10, {"accuracy": 0.5, "secret": 1.0})


def test_privacy_spent_is_none_without_dp(tee: TeeBackend) -> None:
    assert privacy_spent(make_worker(tee).strategy) is None


def test_worker_with_dp_reports_epsilon_and_refuses_the_round_past_the_budget(tee: TeeBackend) -> None:
    params = DpParams.from_mapping(dp_table(3, noise_multiplier=2.0))
    budget = (params.epsilon_schedule[0] + params.epsilon_schedule[1]) / 2  # one round fits
    worker = make_worker(tee, dp={**params.to_mapping(), "epsilon_budget": budget})

    run_round(worker)
    spent = privacy_spent(worker.strategy)

    assert spent is not None and spent.rounds == 1 and spent.epsilon == params.epsilon_schedule[0]
    with pytest.raises(PrivacyBudgetExceeded):
        worker.open_round()
    assert privacy_spent(worker.strategy) == spent


def test_a_dp_job_withholds_evaluation_means_like_its_training_metrics(tee: TeeBackend) -> None:
    worker = make_worker(tee, dp=dp_table(3, noise_multiplier=2.0))
    run_round(worker)

    worker.evaluation.submit("a", 1, 10, {"accuracy": 0.9})
    worker.evaluation.submit("b", 1, 30, {"accuracy": 0.5})

    assert worker.evaluation.close() == {}  # K owners reported, but a DP job releases no self-reported numbers


def test_weighted_mean_with_dp_is_refused_at_job_start(tee: TeeBackend) -> None:
    from enclavefl.enclave.strategies import build_job_strategy
    from enclavefl.errors import JobSpecError

    job = JobSpec(
        name="dp-weighted",
        rounds=1,
        train=TrainConfig(local_steps=1),
        dp=dp_table(1),
    )

    with pytest.raises(JobSpecError, match="unweighted"):
        build_job_strategy(job)


def test_robust_rules_with_dp_are_refused() -> None:
    from enclavefl.enclave.strategies import build_job_strategy
    from enclavefl.errors import JobSpecError

    job = JobSpec(
        name="dp-median",
        rounds=1,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="median", params={}),
        dp=dp_table(1),
    )

    with pytest.raises(JobSpecError, match="central DP"):
        build_job_strategy(job)


def test_a_training_metric_reported_by_fewer_than_k_owners_is_not_released(tee: TeeBackend) -> None:
    # owner a alone reports "secret": in the summary it would be a's own number; K = 2 drops it
    worker = make_worker(tee, k=2)
    r = worker.open_round()
    reports = {"a": {"loss": 1.0, "secret": 0.123}, "b": {"loss": 3.0}, "c": {"loss": 5.0}}
    for owner, metrics in reports.items():
        worker.submit_update(
            UpdateMessage.of(
                owner=owner, round=r, num_examples=2, metrics=metrics, payload=encode_weights(model(1.0))
            ).incoming()
        )

    summary = close_and_release(worker)

    assert summary.metrics == {"loss": pytest.approx(3.0)}

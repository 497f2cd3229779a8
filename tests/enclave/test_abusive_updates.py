"""Issue 12 part 3: an enrolled owner cannot poison the released model with its weight or its values.

Measured before the fix: an update declaring 2**63 examples made the released model [inf, ...] (the weight
overflows float32 in the fused a*x+y) and killed the job; an update of finite but huge values (3e38 x 10
examples) did the same. Now the example count is bounded by the job, and a round whose aggregate is not finite
is redone without the offending update; both refusals are counted and appear in the round summary.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from two_phase import close_and_release

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DEFAULT_MAX_EXAMPLES_PER_UPDATE, DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import JobSpecError, NonFiniteAggregate, TooManyExamples, UpdateExcluded
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

OWNERS = ("alice", "bob", "mallory")


def model(value: float = 0.0) -> ModelWeights:
    return ModelWeights({"w": np.full((4, 3), value, np.float32), "b": np.full((3,), value, np.float32)})


def make_worker(tee: TeeBackend, **changes: object) -> SecureWorker:
    initial = model()
    fields: dict[str, object] = {"data_owners": tuple(DataOwnerSpec(name=n) for n in OWNERS), **changes}
    job = JobSpec(
        name="abuse",
        rounds=2,
        train=TrainConfig(local_steps=1),
        min_contributions=2,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        **fields,  # type: ignore[arg-type]
    )
    return SecureWorker(job=job, initial_model=initial)


def upload(worker: SecureWorker, owner: str, value: float, n: int = 1, round_index: int = 1) -> None:
    payload = encode_weights(model(value))
    worker.submit_update(UpdateMessage.of(owner=owner, round=round_index, num_examples=n, payload=payload).incoming())


@pytest.fixture
def tee(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> TeeBackend:
    return sim_enclave[0]


@pytest.mark.parametrize("declared", [2**63, 2**63 - 1, DEFAULT_MAX_EXAMPLES_PER_UPDATE + 1])
def test_an_example_count_above_the_default_bound_is_refused_and_the_round_goes_on(
    tee: TeeBackend, declared: int
) -> None:
    worker = make_worker(tee)
    worker.open_round()
    bound = DEFAULT_MAX_EXAMPLES_PER_UPDATE
    with pytest.raises(TooManyExamples, match=rf"declares {declared} examples.*at most {bound}"):
        upload(worker, "mallory", 1.0, n=declared)
    upload(worker, "alice", 1.0, n=10)
    upload(worker, "bob", 3.0, n=30)
    summary = close_and_release(worker)
    assert summary.rejected == {"TooManyExamples": 1}
    np.testing.assert_allclose(worker.global_model["w"], 2.5)  # (10*1 + 30*3) / 40: mallory's weight is not in it
    assert np.isfinite(worker.global_model["w"]).all()


def test_the_job_sets_a_tighter_bound_that_enters_its_digest(tee: TeeBackend) -> None:
    loose, tight = make_worker(tee), make_worker(tee, max_examples_per_update=100)
    assert loose.job.digest() != tight.job.digest()  # an owner attests the bound it is held to
    tight.open_round()
    with pytest.raises(TooManyExamples, match=r"declares 101 examples.*at most 100"):
        upload(tight, "mallory", 1.0, n=101)
    upload(tight, "mallory", 1.0, n=100)  # at the bound: accepted


@pytest.mark.parametrize("bound", [0, -1, True, 2**63])
def test_a_job_bound_outside_its_range_is_refused(tee: TeeBackend, bound: object) -> None:
    with pytest.raises(JobSpecError, match="max_examples_per_update"):
        make_worker(tee, max_examples_per_update=bound)


def test_a_round_whose_aggregate_overflows_is_redone_without_the_offender(tee: TeeBackend) -> None:
    worker = make_worker(tee)
    worker.open_round()
    upload(worker, "alice", 1.0, n=10)
    upload(worker, "mallory", 3e38, n=10)  # finite values: only their weighted sum overflows float32
    upload(worker, "bob", 3.0, n=30)
    with pytest.raises(NonFiniteAggregate, match=r"round 1.*not finite; the round is redone without the 1 update"):
        worker.close_round()
    assert worker.rejections["NonFiniteAggregate"] == 1
    assert worker.receipts == ()  # nothing was sealed or signed

    assert worker.open_round() == 1  # the same round again, second attempt
    assert worker.attempt == 2
    with pytest.raises(UpdateExcluded, match=r"'mallory'.*round 1"):
        upload(worker, "mallory", 1.0)
    upload(worker, "alice", 1.0, n=10)
    upload(worker, "bob", 3.0, n=30)
    summary = close_and_release(worker)
    np.testing.assert_allclose(worker.global_model["w"], 2.5)
    assert summary.rejected == {"NonFiniteAggregate": 1, "UpdateExcluded": 1}
    assert summary.contributions == 2

    worker.open_round()  # round 2: the exclusion was for round 1 only
    upload(worker, "mallory", 1.0, round_index=2)


@pytest.mark.parametrize("value", [3.4e38, -3.4e38])
def test_two_colluders_whose_sum_overflows_are_both_left_out(tee: TeeBackend, value: float) -> None:
    worker = make_worker(tee, data_owners=tuple(DataOwnerSpec(name=n) for n in ("a", "b", "m1", "m2")))
    worker.open_round()
    upload(worker, "a", 1.0)
    upload(worker, "m1", value)
    upload(worker, "m2", value)
    upload(worker, "b", 2.0)
    with pytest.raises(NonFiniteAggregate, match="without the 2 update"):
        worker.close_round()
    worker.open_round()
    for name in ("m1", "m2"):
        with pytest.raises(UpdateExcluded):
            upload(worker, name, 0.0)
    upload(worker, "a", 1.0)
    upload(worker, "b", 2.0)
    close_and_release(worker)
    np.testing.assert_allclose(worker.global_model["b"], 1.5)


# --- what leaves: metrics and the host's console ----------------------------------------------------------------
def test_training_metrics_are_withheld_in_a_dp_job_and_released_over_k_otherwise(tee: TeeBackend) -> None:
    from dp_tables import dp_table

    from enclavefl.core.job import StrategySpec

    plain = make_worker(tee)
    private = make_worker(tee, dp=dp_table(2, noise_multiplier=1.1), strategy=StrategySpec(params={"weighted": False}))
    for worker in (plain, private):
        worker.open_round()
        for owner, loss in (("alice", 1.0), ("bob", 3.0)):
            payload = encode_weights(model(0.1))
            worker.submit_update(
                UpdateMessage.of(
                    owner=owner, round=1, num_examples=1, payload=payload, metrics={"loss": loss}
                ).incoming()
            )
    assert close_and_release(plain).metrics == {"loss": pytest.approx(2.0)}
    assert close_and_release(private).metrics == {}  # two owners' self-reported numbers, not noised: withheld


def test_the_nodes_log_names_no_owner_number(tee: TeeBackend, caplog: pytest.LogCaptureFixture) -> None:
    worker = make_worker(tee)
    worker.open_round()
    logger = logging.getLogger("enclavefl")  # directly: a node's logging setup may stop propagation to the root
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("DEBUG", logger="enclavefl"):
            with pytest.raises(TooManyExamples, match="declares 1234567890123 examples"):
                upload(worker, "mallory", 1.0, n=1234567890123)  # the owner hears its number...
            upload(worker, "alice", 1e38, n=10)
            upload(worker, "bob", 1e38, n=10)
            with pytest.raises(NonFiniteAggregate):
                worker.close_round()
    finally:
        logger.removeHandler(caplog.handler)
    logged = caplog.text
    assert "1234567890123" not in logged  # ...the host's console does not
    assert "TooManyExamples" in logged
    assert "'alice'" not in logged and "'bob'" not in logged  # who overflowed the round stays inside

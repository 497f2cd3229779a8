"""The secure worker refuses malformed updates with precise errors while the round goes on."""

from __future__ import annotations

import numpy as np
import pytest
from two_phase import close_and_release

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import (
    DtypeMismatch,
    DuplicateUpdate,
    MalformedUpdate,
    MissingTensor,
    NonFiniteValues,
    NotEnoughContributions,
    NotEnrolled,
    ShapeMismatch,
    UnexpectedTensor,
    UpdateRejected,
    UpdateTooLarge,
    WrongRound,
)
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

OWNERS = ["good1", "good2", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]


def model(value: float = 0.0) -> ModelWeights:
    return ModelWeights({"w": np.full((2, 3), value, dtype=np.float32), "b": np.full((3,), value, dtype=np.float32)})


@pytest.fixture
def worker(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> SecureWorker:
    initial = model()
    job = JobSpec(
        name="validation",
        rounds=2,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": True}),
        min_contributions=2,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    return SecureWorker(job=job, initial_model=initial)


def update(owner: str, payload: bytes, *, round_index: int = 1, n: int = 1) -> UpdateMessage:
    return UpdateMessage.of(owner=owner, round=round_index, num_examples=n, payload=payload)


def payload(tensors: dict[str, np.ndarray]) -> bytes:
    return encode_weights(ModelWeights(tensors))


W = np.ones((2, 3), np.float32)
B = np.ones((3,), np.float32)
MALFORMED = [
    ("m1", payload({"w": np.ones((3, 2), np.float32), "b": B}), ShapeMismatch, "shape [3, 2]"),
    ("m2", payload({"w": W.astype(np.float64), "b": B}), DtypeMismatch, "dtype float64"),
    ("m3", payload({"w": np.full((2, 3), np.nan, np.float32), "b": B}), NonFiniteValues, "'w': 6 value(s)"),
    ("m4", payload({"w": W, "b": np.array([1, np.inf, 1], np.float32)}), NonFiniteValues, "'b': 1 value(s)"),
    ("m5", payload({"w": W}), MissingTensor, "lacks tensor(s) 'b'"),
    ("m6", payload({"w": W, "b": B, "extra": B}), UnexpectedTensor, "'extra'"),
    ("m7", b"\x00" * (1 << 20), UpdateTooLarge, "limit"),
    ("m8", b"not safetensors at all", MalformedUpdate, "header length"),
]


@pytest.mark.parametrize(
    ("owner", "data", "error", "fragment"), MALFORMED, ids=[m[2].__name__ + "-" + m[0] for m in MALFORMED]
)
def test_malformed_update_is_refused_and_round_completes(
    worker: SecureWorker, owner: str, data: bytes, error: type[UpdateRejected], fragment: str
) -> None:
    worker.open_round()
    worker.submit_update(update("good1", encode_weights(model(1.0)), n=1).incoming())

    with pytest.raises(error) as info:
        worker.submit_update(update(owner, data).incoming())
    worker.submit_update(update("good2", encode_weights(model(4.0)), n=3).incoming())
    summary = close_and_release(worker)

    assert fragment in str(info.value)
    assert summary.contributions == 2
    assert summary.rejected == {error.__name__: 1}
    np.testing.assert_allclose(worker.global_model["w"], np.full((2, 3), 3.25, np.float32))


def test_refuses_unenrolled_duplicate_and_wrong_round(worker: SecureWorker) -> None:
    worker.open_round()
    good = encode_weights(model(1.0))
    worker.submit_update(update("good1", good).incoming())

    with pytest.raises(NotEnrolled, match="'mallory' is not enrolled"):
        worker.submit_update(update("mallory", good).incoming())
    with pytest.raises(DuplicateUpdate, match="already contributed to round 1"):
        worker.submit_update(update("good1", good).incoming())
    with pytest.raises(WrongRound, match="open round is 1"):
        worker.submit_update(update("good2", good, round_index=2).incoming())

    assert worker.rejections == {"NotEnrolled": 1, "DuplicateUpdate": 1, "WrongRound": 1}


def test_no_aggregate_of_fewer_than_k_updates(worker: SecureWorker) -> None:
    worker.open_round()
    before = worker.global_model.sha256()
    worker.submit_update(update("good1", encode_weights(model(9.0))).incoming())

    with pytest.raises(NotEnoughContributions, match="at least 2"):
        worker.close_round()

    assert worker.global_model.sha256() == before


def test_metrics_are_released_only_as_weighted_means(worker: SecureWorker) -> None:
    worker.open_round()
    for owner, n, loss in [("good1", 1, 1.0), ("good2", 3, 3.0)]:
        msg = UpdateMessage.of(
            owner=owner, round=1, num_examples=n, payload=encode_weights(model()), metrics={"loss": loss}
        )
        worker.submit_update(msg.incoming())

    summary = close_and_release(worker)

    assert summary.metrics == {"loss": pytest.approx(2.5)}


def test_dp_receipts_carry_the_dp_parameters_and_the_cumulative_epsilon(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    from dp_tables import dp_table

    from enclavefl.core.receipt_checks import verify_receipt_chain
    from enclavefl.privacy import DpParams

    initial = model()
    dp = dp_table(2, noise_multiplier=1.1)
    job = JobSpec(
        name="dp-receipts",
        rounds=2,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=2,
        data_owners=(DataOwnerSpec(name="good1"), DataOwnerSpec(name="good2")),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        dp=dp,
    )
    worker = SecureWorker(job=job, initial_model=initial)
    for round_index in (1, 2):
        worker.open_round()
        worker.submit_update(update("good1", encode_weights(model(0.5)), round_index=round_index).incoming())
        worker.submit_update(update("good2", encode_weights(model(-0.5)), round_index=round_index).incoming())
        close_and_release(worker)

    receipts = verify_receipt_chain(worker.receipts, worker.identity.public_key_pem, job.digest())

    params = DpParams.from_mapping(dp)
    assert [r.dp for r in receipts] == [dp, dp]
    expected = list(params.epsilon_schedule)
    assert [r.cumulative_epsilon for r in receipts] == pytest.approx(expected)
    assert receipts[0].cumulative_epsilon < receipts[1].cumulative_epsilon

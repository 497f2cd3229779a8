"""A sealed round releases nothing until every contributor and a majority of owners signed its receipt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from two_phase import acknowledge

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import sign_acknowledgement
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, open_checkpoint_store
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import AcknowledgementRefused, NotEnrolled, ReleaseWithheld, RoundStateError, WrongRound
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")
Enclave = tuple[TeeBackend, AttestationPolicy]


def model(value: float) -> ModelWeights:
    return ModelWeights({"w": np.full((2, 2), value, np.float32)})


def make_job(owners: dict[str, OwnerCredentials | None], *, k: int = 2) -> JobSpec:
    initial = model(0.0)
    specs = tuple(
        DataOwnerSpec(name=n, certificate_pem=c.certificate_pem.decode() if c is not None else "")
        for n, c in owners.items()
    )
    return JobSpec(
        name="two-phase",
        rounds=3,
        train=TrainConfig(local_steps=1),
        min_contributions=k,
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        data_owners=specs,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )


def seal_round(worker: SecureWorker, values: dict[str, float]) -> SignedReceipt:
    r = worker.open_round()
    for owner, value in values.items():
        worker.submit_update(
            UpdateMessage.of(owner=owner, round=r, num_examples=1, payload=encode_weights(model(value))).incoming()
        )
    return worker.close_round()


@pytest.fixture
def keyed() -> dict[str, OwnerCredentials]:
    return {n: OwnerCredentials.generate(n) for n in ("a", "b", "c")}


def test_a_sealed_round_shows_nothing_of_its_aggregate_until_signed(sim_enclave: Enclave) -> None:
    worker = SecureWorker(job=make_job({"a": None, "b": None, "c": None}), initial_model=model(0.0))
    before = worker.status().global_model_sha256

    receipt = seal_round(worker, {"a": 1.0, "b": 3.0})

    status = worker.status()
    assert status.phase is RoundPhase.SIGNING and status.round == 1
    assert status.global_model_sha256 == before  # the status does not reveal the new aggregate
    assert worker.receipts == ()
    with pytest.raises(WrongRound, match="waits for its contributors' signatures"):
        worker.global_model_bytes(1)
    with pytest.raises(WrongRound):
        worker.global_model_bytes(0)
    with pytest.raises(RoundStateError, match="sealed"):
        worker.open_round()
    with pytest.raises(ReleaseWithheld, match="2 contributor"):
        worker.release_round()
    acknowledge(worker, receipt, ["a"])
    with pytest.raises(ReleaseWithheld, match="1 contributor"):
        worker.release_round()

    acknowledge(worker, receipt, ["b"])
    summary = worker.release_round()

    assert summary.round == 1 and summary.contributions == 2
    assert worker.receipts == (receipt,)
    np.testing.assert_array_equal(worker.global_model["w"], np.full((2, 2), 2.0, np.float32))


def test_a_contributors_signature_must_verify_under_its_enrolled_key_over_exactly_this_receipt(
    sim_enclave: Enclave, keyed: dict[str, OwnerCredentials]
) -> None:
    worker = SecureWorker(job=make_job(dict(keyed)), initial_model=model(0.0))
    receipt = seal_round(worker, {"a": 1.0, "b": 3.0})
    mallory = OwnerCredentials.generate("a")

    with pytest.raises(AcknowledgementRefused, match="does not verify under its enrolled key"):
        worker.acknowledge(sign_acknowledgement(mallory.private_key, owner="a", receipt=receipt))
    with pytest.raises(AcknowledgementRefused, match="does not verify"):  # b's signature presented as a's
        signed_by_b = sign_acknowledgement(keyed["b"].private_key, owner="b", receipt=receipt)
        worker.acknowledge(
            Acknowledgement(owner="a", round=1, receipt_sha256=receipt.sha256, signature=signed_by_b.signature)
        )
    with pytest.raises(AcknowledgementRefused, match="the sealed round is 1 with receipt"):
        worker.acknowledge(Acknowledgement(owner="a", round=1, receipt_sha256=bytes(32), signature=b""))
    with pytest.raises(NotEnrolled):
        worker.acknowledge(sign_acknowledgement(mallory.private_key, owner="mallory", receipt=receipt))
    assert worker.signatures_missing() == 2

    for name in ("a", "b"):
        worker.acknowledge(sign_acknowledgement(keyed[name].private_key, owner=name, receipt=receipt))
    worker.release_round()

    assert worker.rounds_completed == 1


def test_a_release_needs_a_majority_of_the_enrolled_owners_so_two_signer_sets_always_intersect(
    sim_enclave: Enclave,
) -> None:
    owners: dict[str, OwnerCredentials | None] = {n: None for n in ("a", "b", "c", "d", "e")}
    worker = SecureWorker(job=make_job(owners), initial_model=model(0.0))
    receipt = seal_round(worker, {"a": 1.0, "b": 3.0})

    acknowledge(worker, receipt, ["a", "b"])  # every contributor signed: 2 of 5 is not a majority
    assert worker.signatures_missing() == 1
    with pytest.raises(ReleaseWithheld, match="1 more owner"):
        worker.release_round()
    acknowledge(worker, receipt, ["e"])  # a non-contributor witnesses the receipt
    worker.release_round()

    assert worker.rounds_completed == 1


def test_a_worker_resumed_from_a_sealed_round_asks_for_the_same_signatures_and_releases_the_same_aggregate(
    tmp_path: Path,
) -> None:
    spec = make_job({"a": None, "b": None, "c": None})
    store = CheckpointStore(tmp_path, sealing_key=bytes(16), job_digest=spec.digest())  # what the node writes
    first = SecureWorker(job=spec, initial_model=model(0.0), checkpoint_sink=store.save)
    receipt = seal_round(first, {"a": 1.0, "b": 3.0, "c": 5.0})
    acknowledge(first, receipt, ["a", "c"])  # b's signature never arrives: the node is killed

    sealed = store.load_latest()
    assert sealed is not None
    resumed = SecureWorker.from_checkpoint(sealed, job=spec)

    assert resumed.status().phase is RoundPhase.SIGNING and resumed.rounds_completed == 0
    assert resumed.pending_receipt() == receipt  # the same body and signature: nothing was re-run
    assert resumed.signatures_missing() == 3  # signatures are not sealed: every contributor signs again
    acknowledge(resumed, resumed.pending_receipt(), ["a", "b", "c"])
    summary = resumed.release_round()
    acknowledge(first, receipt, ["b"])
    assert first.release_round() == summary
    np.testing.assert_array_equal(resumed.global_model["w"], first.global_model["w"])
    assert resumed.receipts == first.receipts
    assert len(store.list()) == 1  # the release writes nothing: the sealed round already holds the state after it


def test_an_acknowledgement_after_the_release_is_a_no_op_and_one_for_nothing_is_refused(sim_enclave: Enclave) -> None:
    worker = SecureWorker(job=make_job({"a": None, "b": None}), initial_model=model(0.0))
    receipt = seal_round(worker, {"a": 1.0, "b": 3.0})
    acknowledge(worker, receipt, ["a", "b"])
    worker.release_round()

    acknowledge(worker, receipt, ["a"])  # a late repeat (the owner re-signed after a reconnect)
    with pytest.raises(AcknowledgementRefused, match="no sealed round waits"):
        worker.acknowledge(Acknowledgement(owner="a", round=2, receipt_sha256=bytes(32), signature=b""))


def test_signatures_kept_by_the_host_release_a_resumed_round_only_if_they_verify(
    sim_enclave: Enclave, keyed: dict[str, OwnerCredentials], tmp_path: Path
) -> None:
    tee = sim_enclave[0]
    spec = make_job(dict(keyed))
    store = open_checkpoint_store(tmp_path, tee=tee, job_digest=spec.digest())
    first = SecureWorker(
        job=spec,
        initial_model=model(0.0),
        checkpoint_sink=store.save,
        acknowledgement_sink=store.save_acknowledgements,
    )
    receipt = seal_round(first, {"a": 1.0, "b": 3.0})
    for name in ("a", "b"):
        first.acknowledge(sign_acknowledgement(keyed[name].private_key, owner=name, receipt=receipt))
    first.release_round()  # the node is killed right after: the newest checkpoint is the sealed, pending one
    kept = store.load_acknowledgements(receipt)
    forged = (*kept[:1], Acknowledgement(owner="b", round=1, receipt_sha256=receipt.sha256, signature=b"\x30\x00"))

    resumed = SecureWorker.from_checkpoint(store.load_latest(), job=spec)  # type: ignore[arg-type]
    assert resumed.restore_acknowledgements(forged) == 1  # the host cannot forge b's signature
    assert resumed.signatures_missing() == 1
    assert resumed.restore_acknowledgements(kept) == 2
    resumed.release_round()

    assert resumed.receipts == first.receipts
    assert sorted(a.owner for a in kept) == ["a", "b"]

"""A secure worker resumed from its checkpoint continues exactly where it stopped: model, chain, key, state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dp_tables import dp_table
from two_phase import acknowledge, close_and_release

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import ReceiptTracker, verify_receipt_chain
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint, open_checkpoint_store
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.sealing import privacy_spent
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CheckpointError, RollbackDetected
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = pytest.mark.filterwarnings("ignore")
Enclave = tuple[TeeBackend, AttestationPolicy]


def model(value: float) -> ModelWeights:
    return ModelWeights({"w": np.full((3, 2), value, np.float32)})


def job(strategy: StrategySpec, dp: dict[str, object] | None = None, rounds: int = 4) -> JobSpec:
    initial = model(0.0)
    return JobSpec(
        name="resume",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        strategy=strategy,
        min_contributions=2,
        data_owners=(DataOwnerSpec(name="a"), DataOwnerSpec(name="b")),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        dp=dp,
    )


def play_round(worker: SecureWorker, round_index: int) -> None:
    worker.open_round()
    for owner, value in (("a", 1.0 + round_index), ("b", -0.5 * round_index)):
        worker.submit_update(
            UpdateMessage.of(
                owner=owner, round=round_index, num_examples=1, payload=encode_weights(model(value))
            ).incoming()
        )
    close_and_release(worker)


FEDAVGM = StrategySpec(name="fedavgm", params={"server_lr": 1.0, "momentum": 0.9})


def test_a_resumed_worker_ends_with_the_same_model_and_one_chain_under_one_key(tmp_path: Path) -> None:
    spec = job(FEDAVGM)  # server momentum: its state must survive the restart too
    straight = SecureWorker(job=spec, initial_model=model(0.0))
    for r in range(1, 5):
        play_round(straight, r)
    first = SecureWorker(job=spec, initial_model=model(0.0))
    for r in range(1, 3):
        play_round(first, r)

    store = CheckpointStore(tmp_path, sealing_key=bytes(16), job_digest=spec.digest())
    saved = store.load(store.save(first.to_checkpoint()))  # through the sealed file and log, as a node restarts
    resumed = SecureWorker.from_checkpoint(saved, job=spec)
    for r in range(3, 5):
        play_round(resumed, r)

    np.testing.assert_array_equal(resumed.global_model["w"], straight.global_model["w"])
    chain = verify_receipt_chain(resumed.receipts, first.identity.public_key_pem, spec.digest())
    assert [r.round for r in chain] == [1, 2, 3, 4]


def test_the_dp_accountant_resumes_with_the_rounds_already_released() -> None:
    spec = job(StrategySpec(name="fedavg", params={"weighted": False}), dp=dp_table(4))
    worker = SecureWorker(job=spec, initial_model=model(0.0))
    for r in range(1, 4):
        play_round(worker, r)

    resumed = SecureWorker.from_checkpoint(worker.to_checkpoint(), job=spec)

    spent, again = privacy_spent(worker.strategy), privacy_spent(resumed.strategy)
    assert spent is not None and again is not None
    assert again.rounds == 3 and again.epsilon == spent.epsilon


def test_a_checkpoint_is_sealed_before_the_round_is_released() -> None:
    seen: list[tuple[int, int]] = []
    worker: SecureWorker

    def sink(checkpoint: NodeCheckpoint) -> None:  # at this moment the worker must still show the old round
        seen.append((checkpoint.rounds_completed, worker.rounds_completed))

    worker = SecureWorker(job=job(FEDAVGM), initial_model=model(0.0), checkpoint_sink=sink)
    play_round(worker, 1)
    play_round(worker, 2)

    assert seen == [(1, 0), (2, 1)]


def test_a_node_resumes_from_its_store_with_the_same_key_and_no_model_owner(
    sim_enclave: Enclave, tmp_path: Path
) -> None:
    tee, _ = sim_enclave
    spec = job(FEDAVGM)
    store = open_checkpoint_store(tmp_path, tee=tee, job_digest=spec.digest())
    first = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0), checkpoints=store)
    assert first.worker is not None
    play_round(first.worker, 1)

    reopened = open_checkpoint_store(tmp_path, tee=tee, job_digest=spec.digest())
    again = AggregatorNode(job=spec, tee=tee, checkpoints=reopened)

    # the newest checkpoint is round 1 as sealed before its signatures: the node asks for them again
    assert again.worker is not None and again.node_status().phase is RoundPhase.SIGNING
    assert again.worker.pending_receipt() == first.worker.receipts[0]
    acknowledge(again.worker, again.worker.pending_receipt(), ["a", "b"])
    again.worker.release_round()
    assert again.worker.rounds_completed == 1
    assert again.worker.global_model.sha256() == first.worker.global_model.sha256()
    assert again.identity.spki_sha256 == first.identity.spki_sha256
    assert again.node_status().job_state.value == "running"


def test_a_checkpoint_of_another_strategy_is_refused_whole() -> None:
    worker = SecureWorker(job=job(FEDAVGM), initial_model=model(0.0))
    play_round(worker, 1)
    other = job(StrategySpec(name="fedavg"))
    checkpoint = worker.to_checkpoint()
    forged = NodeCheckpoint(
        job_digest=other.digest(),
        rounds_completed=1,
        global_model=checkpoint.global_model,
        identity_key_der=checkpoint.identity_key_der,
        receipts=checkpoint.receipts,
        strategy_state=checkpoint.strategy_state,
    )

    with pytest.raises(CheckpointError, match="does not fit the job's strategy"):
        SecureWorker.from_checkpoint(forged, job=other)


def test_an_owner_remembers_the_chain_across_its_own_restart_and_refuses_an_older_one(tmp_path: Path) -> None:
    spec = job(FEDAVGM)
    worker = SecureWorker(job=spec, initial_model=model(0.0))
    for r in range(1, 4):
        play_round(worker, r)
    key = worker.identity.public_key_pem
    PersistentReceiptTracker.open(tmp_path, job_digest=spec.digest()).observe(worker.receipts, key)

    reopened = PersistentReceiptTracker.open(tmp_path, job_digest=spec.digest())

    assert reopened.head_round == 3
    assert reopened.last_receipt is not None and reopened.last_receipt.receipt.round == 3
    with pytest.raises(RollbackDetected, match="round 2 chain head"):
        reopened.observe(worker.receipts[:2], key)
    ReceiptTracker(job_digest=spec.digest()).observe(worker.receipts[:2], key)  # a fresh tracker would not know


def test_opening_a_store_removes_leftovers_of_an_interrupted_write(sim_enclave: Enclave, tmp_path: Path) -> None:
    tee, _ = sim_enclave
    tmp_path.joinpath(".checkpoint-00000003.sealed.123.tmp").write_bytes(b"sealed but never renamed")

    store = open_checkpoint_store(tmp_path, tee=tee, job_digest=bytes(32))

    assert list(tmp_path.iterdir()) == [] and store.load_latest() is None

"""Issue 26 item 1, attacks: the operator cannot steer a round's cohort.

The host restarts the enclave before a round is sealed or released (to get a new draw once it has watched who
uploads), rolls it back to an older sealed checkpoint, pushes an owner outside the cohort to upload or sign, or
shows an owner a cohort claim that its receipt contradicts. Each is performed through the real code path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import encode_weights
from enclavefl.core.cohort import member_commitment
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipts import SignedReceipt, sign_receipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, open_checkpoint_store
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CohortMismatch, NotInCohort
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.data_owner_loop import DataOwnerReport
from enclavefl.owner.data_owner_main import describe_report
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.sim.federation import run_federation
from enclavefl.task import TensorData, TorchTask
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.inmemory import InMemoryClient

pytestmark = pytest.mark.filterwarnings("ignore")
Enclave = tuple[TeeBackend, AttestationPolicy]
OWNERS = tuple(f"site{i}" for i in range(7))


def model(value: float) -> ModelWeights:
    return ModelWeights({"weight": np.full((1, 2), value, np.float32), "bias": np.full((1,), value, np.float32)})


def cohort_job(*, rounds: int = 3, size: int = 3, k: int = 2) -> JobSpec:
    initial = model(0.0)
    return JobSpec(
        name="cohort-attacks",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        min_contributions=k,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        clients_per_round=size,
    )


def claims(node: AggregatorNode) -> dict[str, tuple[bool, bytes]]:
    """What each owner's own status tells it about the current round: (member, token)."""
    out = {}
    for name in OWNERS:
        status = node.node_status(data_owner=True, caller=name)
        out[name] = (not status.outside_cohort, status.cohort_token)
    return out


def upload(worker: SecureWorker, owner: str, round_index: int) -> None:
    message = UpdateMessage.of(owner=owner, round=round_index, num_examples=1, payload=encode_weights(model(1.0)))
    worker.submit_update(message.incoming())


def acknowledge(worker: SecureWorker, receipt: SignedReceipt, signers: list[str]) -> None:
    """Keyless owners sign in process (the enrolment test jobs have no keys)."""
    for name in signers:
        worker.acknowledge(
            Acknowledgement(owner=name, round=receipt.receipt.round, receipt_sha256=receipt.sha256, signature=b"")
        )


def members(told: dict[str, tuple[bool, bytes]]) -> list[str]:
    return sorted(name for name, (member, _) in told.items() if member)


def test_a_restart_before_the_seal_or_the_release_draws_the_same_cohort(sim_enclave: Enclave, tmp_path: Path) -> None:
    tee, _ = sim_enclave
    spec = cohort_job()
    node = AggregatorNode(
        job=spec,
        tee=tee,
        initial_model=model(0.0),
        checkpoints=open_checkpoint_store(tmp_path, tee=tee, job_digest=spec.digest()),
    )
    worker = node.worker
    assert worker is not None
    worker.open_round()
    first = claims(node)
    assert len(members(first)) == 3

    # The host watched who downloads and uploads, kills the enclave before the round seals and starts it again.
    restarted = AggregatorNode(
        job=spec, tee=tee, checkpoints=open_checkpoint_store(tmp_path, tee=tee, job_digest=spec.digest())
    )
    assert restarted.worker is not None
    assert restarted.worker.open_round() == 1
    assert claims(restarted) == first  # same members, same tokens: nothing to gain by restarting
    for name in members(first)[:2]:
        upload(restarted.worker, name, 1)
    sealed = restarted.worker.close_round()

    # Sealed, not released: killed again. The sealed round comes back with its cohort and only it may sign.
    again = AggregatorNode(
        job=spec, tee=tee, checkpoints=open_checkpoint_store(tmp_path, tee=tee, job_digest=spec.digest())
    )
    assert again.worker is not None and again.node_status().phase is RoundPhase.SIGNING
    assert again.worker.pending_receipt() == sealed
    assert claims(again) == first
    outsider = next(n for n in OWNERS if n not in members(first))
    with pytest.raises(NotInCohort):
        acknowledge(again.worker, sealed, [outsider])
    acknowledge(again.worker, sealed, members(first)[:2])
    assert again.worker.release_round().round == 1


def test_a_rollback_to_an_older_sealed_state_redraws_no_released_round(tmp_path: Path) -> None:
    spec = cohort_job(rounds=4)
    # the host keeps a copy of every sealed checkpoint
    kept = CheckpointStore(tmp_path, sealing_key=bytes(16), job_digest=spec.digest(), keep=10)
    worker = SecureWorker(job=spec, initial_model=model(0.0), checkpoint_sink=kept.save)
    assert worker.cohorts is not None
    drawn = {}
    for r in range(1, 4):
        worker.open_round()
        drawn[r] = worker.cohorts.draw(r).members
        for name in sorted(drawn[r])[:2]:
            upload(worker, name, r)
        acknowledge(worker, worker.close_round(), sorted(drawn[r]))
        worker.release_round()

    # Rolled back to round 1's sealed state: rounds 2 and 3 open again, with the cohorts they were released with.
    old = kept.load(kept.list()[0])
    rolled = SecureWorker.from_checkpoint(old, job=spec)
    assert rolled.cohorts is not None
    acknowledge(rolled, rolled.pending_receipt(), sorted(drawn[1]))
    rolled.release_round()
    for r in (2, 3):
        assert rolled.open_round() == r
        assert rolled.cohorts.draw(r).members == drawn[r]
        outsider = next(n for n in OWNERS if n not in drawn[r])
        with pytest.raises(NotInCohort):
            upload(rolled, outsider, r)
        for name in sorted(drawn[r])[:2]:
            upload(rolled, name, r)
        acknowledge(rolled, rolled.close_round(), sorted(drawn[r]))
        rolled.release_round()


def test_the_operator_cannot_make_an_owner_outside_the_cohort_upload(sim_enclave: Enclave) -> None:
    tee, policy = sim_enclave
    spec = cohort_job(rounds=3, size=3, k=3)
    task = TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss)
    data = {name: TensorData(x=torch.full((2, 2), float(i)), y=torch.ones(2, 1)) for i, name in enumerate(OWNERS)}
    initial = model(0.0)

    seen: list[AggregatorNode] = []
    result = run_federation(
        job=spec, task=task, datasets=data, initial_model=initial, tee=tee, policy=policy, on_node=seen.append
    )

    assert result.status.job_state is JobState.FINISHED
    for r in (1, 2, 3):
        took_part = [name for name, report in result.owners.items() if r in report.contributed]
        sat_out = [name for name, report in result.owners.items() if r in report.skipped]
        # an owner outside may not even see the round open (its cohort can finish first): it never uploads
        assert len(took_part) == 3 and not set(took_part) & set(sat_out)
    assert [s.contributions for s in result.summaries] == [3, 3, 3]
    assert sum(len(report.skipped) for report in result.owners.values()) > 0
    assert "outside the cohort of rounds 2-3" in describe_report("x", DataOwnerReport(skipped=[2, 3]))
    assert seen[0].rejections["NotInCohort"] == 0  # the owners outside a cohort never tried to upload


def test_an_upload_from_outside_the_cohort_is_refused_by_the_node_service(sim_enclave: Enclave) -> None:
    tee, _ = sim_enclave
    spec = cohort_job()
    node = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0))
    assert node.worker is not None
    node.worker.open_round()
    outsider = next(n for n, (member, _) in claims(node).items() if not member)
    client = InMemoryClient(node, caller=outsider)

    with pytest.raises(NotInCohort, match="not in the cohort the enclave drew for round 1"):
        client.upload_update(
            UpdateMessage.of(owner=outsider, round=1, num_examples=1, payload=encode_weights(model(5.0)))
        )
    assert node.rejections["NotInCohort"] == 1 and node.worker.status().contributions == 0


# --- forged cohort claims: the owners refuse them ----------------------------------------------------------
def owner_view(spec: JobSpec, name: str, node: AggregatorNode) -> tuple[ReceiptChainView, NodeStatus]:
    view = ReceiptChainView(job_digest=spec.digest())
    view.cohort_size = spec.cohort_size
    status = node.node_status(data_owner=True, caller=name)
    view.note_cohort(status)
    return view, status


def sealed_round(spec: JobSpec, node: AggregatorNode) -> SignedReceipt:
    worker = node.worker
    assert worker is not None
    worker.open_round()
    for name in members(claims(node))[:2]:
        upload(worker, name, 1)
    return worker.close_round()


def forged(receipt: SignedReceipt, node: AggregatorNode, **changes: object) -> SignedReceipt:
    """The same round's receipt with another cohort, signed with the node's key (a node that lies)."""
    return sign_receipt(dataclasses.replace(receipt.receipt, **changes), node.identity.private_key)  # type: ignore[arg-type]


def test_an_owner_refuses_a_receipt_whose_cohort_contradicts_its_own_claim(sim_enclave: Enclave) -> None:
    tee, _ = sim_enclave
    spec = cohort_job()
    node = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0))
    receipt = sealed_round(spec, node)
    told = claims(node)
    inside = members(told)
    outsider = next(n for n in OWNERS if not told[n][0])
    key = node.identity.public_key_pem
    honest = receipt.receipt.cohort
    assert honest is not None

    def entry(name: str) -> bytes:
        return member_commitment(job_digest=spec.digest(), round_index=1, token=told[name][1])

    def refused(name: str, lie: SignedReceipt, match: str) -> None:
        view, _ = owner_view(spec, name, node)
        with pytest.raises(CohortMismatch, match=match):
            view.record_for_signing(lie, key, chain=())
        assert view.signed_rounds.signed(1) is None  # refused before anything was recorded (or signed)

    for name in inside:  # the honest receipt: each member finds itself, records it and may sign
        view, _ = owner_view(spec, name, node)
        view.record_for_signing(receipt, key, chain=())
        assert view.signed_rounds.signed(1) == receipt

    dropped = inside[0]
    swapped = tuple(sorted((*[c for c in honest if c != entry(dropped)], entry(outsider))))
    lie = forged(receipt, node, cohort=swapped)
    refused(dropped, lie, "told this owner it is in the cohort, but the receipt does not list it")
    refused(outsider, lie, "told this owner it is outside the cohort, but the receipt lists it")
    for name in inside:
        refused(name, forged(receipt, node, cohort=honest[:2]), "a cohort of 2 distinct owner")
        refused(name, forged(receipt, node, cohort=(honest[0], honest[0], honest[1])), "of 2 distinct owner")
        refused(name, forged(receipt, node, cohort=None), "commits to none")
    refused(outsider, receipt, "outside the cohort and signs nothing")


def test_a_redrawn_cohort_is_refused_by_an_owner_that_saw_the_first_draw(sim_enclave: Enclave, tmp_path: Path) -> None:
    tee, _ = sim_enclave
    spec = cohort_job()
    first = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0))
    assert first.worker is not None
    first.worker.open_round()
    view, _ = owner_view(spec, OWNERS[0], first)

    # The host wipes the sealed state and starts a fresh enclave (a new key, so a new draw) for the same job.
    fresh = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0))
    assert fresh.worker is not None
    fresh.worker.open_round()

    with pytest.raises(CohortMismatch, match="a redrawn cohort is refused"):
        view.note_cohort(fresh.node_status(data_owner=True, caller=OWNERS[0]))


def durable_view(spec: JobSpec, state: Path, *, read_only: bool = False) -> ReceiptChainView:
    """An owner's view as `enclavefl data-owner` builds it: its memory in its state directory (a new process)."""
    tracker = PersistentReceiptTracker.open(state, job_digest=spec.digest(), read_only=read_only)
    view = ReceiptChainView(job_digest=spec.digest(), tracker=tracker)
    view.cohort_size = spec.cohort_size
    return view


def test_a_redrawn_cohort_is_refused_after_the_owner_restarts(sim_enclave: Enclave, tmp_path: Path) -> None:
    tee, _ = sim_enclave
    spec = cohort_job()
    first = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0))
    assert first.worker is not None
    first.worker.open_round()
    told = first.node_status(data_owner=True, caller=OWNERS[0])
    durable_view(spec, tmp_path).note_cohort(told)  # the owner's process then stops (crash, upgrade, reboot)

    # The host wipes the enclave's sealed state (a fresh key: a new draw) while the owner is down.
    fresh = AggregatorNode(job=spec, tee=tee, initial_model=model(0.0))
    assert fresh.worker is not None
    fresh.worker.open_round()
    retold = fresh.node_status(data_owner=True, caller=OWNERS[0])
    assert retold.round == told.round and retold.cohort_token != told.cohort_token

    restarted = durable_view(spec, tmp_path)
    restarted.note_cohort(told)  # the first story again: accepted (a restart is not a mismatch by itself)
    with pytest.raises(CohortMismatch, match="a redrawn cohort is refused"):
        restarted.note_cohort(retold)
    with pytest.raises(CohortMismatch, match="a redrawn cohort is refused"):
        durable_view(spec, tmp_path, read_only=True).note_cohort(retold)  # a second reader checks the file too

    # A second reader writes nothing: a claim it alone saw is not on disk for the next process.
    other = tmp_path / "other"
    durable_view(spec, other, read_only=True).note_cohort(retold)
    durable_view(spec, other).note_cohort(told)

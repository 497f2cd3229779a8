"""A data owner that signed a round, when the node releases that round between two of the owner's calls.

The owner reads the node's status (which carries the pending receipt while the round is signing), then sometimes
the released chain, and the other contributor's signature may release the round before or between them. Found by
the fault suite when status and pending receipt were two calls (an owner SIGKILLed after signing and restarted,
the other signing meanwhile): the owner read "signing, 0 released", then no pending receipt, reused its stale
chain and accused the honest node of dropping the round it had signed (RoundAlreadySigned). Here the release is
made to happen exactly in each window, over real gRPC and TLS.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from transport_harness import Federation, sign_sealed_round, update

from enclavefl.core.messages import RoundPhase
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.task import TensorData, TorchTask
from enclavefl.transport.api import JobState

pytestmark = pytest.mark.filterwarnings("ignore")
UNUSED_TASK = TorchTask(model_factory=lambda: torch.nn.Linear(1, 1), loss_fn=torch.nn.functional.mse_loss)


class ReleaseDuring:
    """alice's client; the first call to `method` lets bob sign and waits for the release before it runs."""

    def __init__(self, client: Any, method: str, release: Any) -> None:
        self._client, self._method, self._release = client, method, release
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._method or self.raced:
            return real

        def racing(*args: Any, **kwargs: Any) -> Any:
            self.raced = True
            self._release()
            return real(*args, **kwargs)

        return racing


def wait_phase(node: AggregatorNode, round_index: int, phase: RoundPhase) -> None:
    deadline = time.monotonic() + 10
    while not ((st := node.node_status()).round == round_index and st.phase is phase):
        assert time.monotonic() < deadline, st
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("rounds", "window"),
    [
        # released just before the node answers the status: the new head is the receipt the restarted owner signed,
        # so it knows the chain without fetching it, and must not take the round as dropped
        (1, "node_status"),
        (2, "receipts"),  # the status carried the pending receipt; the chain fetched after it already holds that round
    ],
)
def test_a_release_between_the_owners_calls_is_no_rollback(
    federation_factory: Any, tmp_path: Path, rounds: int, window: str
) -> None:
    fed: Federation = federation_factory(rounds=rounds, round_deadline_seconds=0.3)  # carol never uploads
    node = fed.node()
    alice, bob = fed.connect(node, "alice"), fed.connect(node, "bob")
    for r in range(1, rounds + 1):
        wait_phase(node, r, RoundPhase.OPEN)
        alice.client.upload_update(update("alice", r, 1.0))
        bob.client.upload_update(update("bob", r, 3.0))
        if r < rounds:
            sign_sealed_round(node, {"alice": alice, "bob": bob}, r)
    wait_phase(node, rounds, RoundPhase.SIGNING)

    tracker = PersistentReceiptTracker.open(tmp_path / "alice", job_digest=fed.job.digest())
    owner = DataOwner(
        name="alice",
        task=UNUSED_TASK,
        data=TensorData(x=torch.zeros(1, 1), y=torch.zeros(1, 1)),
        job=fed.job,
        chain=ReceiptChainView(job_digest=fed.job.digest(), tracker=tracker),
    )
    owner.use(alice)
    ack = owner.sign_receipt(alice.client.pending_receipt(), chain=alice.client.receipts())  # recorded, then signed
    alice.client.acknowledge(ack)
    assert node.node_status().phase is RoundPhase.SIGNING  # bob has not signed: the round waits

    def bob_signs_and_the_round_is_released() -> None:
        sign_sealed_round(node, {"bob": bob}, rounds)
        while node.node_status().rounds_completed < rounds:
            time.sleep(0.01)

    # a fresh owner object with the same state: alice restarted after signing (it does not know it sent the ack)
    reopened = PersistentReceiptTracker.open(tmp_path / "alice", job_digest=fed.job.digest())
    restarted = DataOwner(
        name="alice",
        task=UNUSED_TASK,
        data=owner.data,
        job=fed.job,
        chain=ReceiptChainView(job_digest=fed.job.digest(), tracker=reopened),
    )
    racing = ReleaseDuring(alice.client, window, bob_signs_and_the_round_is_released)
    report = run_data_owner(restarted, dataclasses.replace(alice, client=racing))

    assert racing.raced  # the release did happen inside the window
    assert report.final_state is JobState.FINISHED
    assert reopened.head_round == rounds and reopened.signed_rounds.last_round == rounds
    assert [r.sha256 for r in alice.client.receipts()][-1] == reopened.signed_rounds.all()[-1].sha256

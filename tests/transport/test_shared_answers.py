"""Issue 25 item 2: the status that answers many waiting owners is serialized once, not once per owner.

At a seal every waiting owner is answered with the same status, carrying the round's receipt (its body lists every
commitment: O(N) bytes). Serialized per answer, a round at N owners built N copies of an O(N) receipt at the same
moment (O(N^2) bytes held by the node: 276 KiB of RSS per owner at 1,000 owners, docs/performance.md "Many
owners"). These tests count the serializations over real gRPC and TLS, and check the shared bytes are the wire
form protobuf would have built.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from transport_harness import Federation, update

from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
from enclavefl.core.receipts import RoundReceipt, sign_receipt
from enclavefl.transport import wire
from enclavefl.transport.answers import StatusAnswers
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.proto import enclavefl_pb2 as pb

pytestmark = pytest.mark.filterwarnings("ignore")


def test_the_receipt_is_serialized_once_per_seal_whatever_the_number_of_owners_waiting(
    federation_factory: Callable[..., Federation], monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = federation_factory(min_contributions=3, rounds=2)
    node = fed.node()
    owners = {name: fed.connect(node, name) for name in fed.owners}
    serialized: list[NodeStatus] = []
    to_proto = wire.status_to_proto

    def counted(status: NodeStatus) -> pb.NodeStatus:
        serialized.append(status)
        return to_proto(status)

    monkeypatch.setattr(wire, "status_to_proto", counted)  # the node's answers and the owners' long polls
    errors: list[BaseException] = []
    answered: list[tuple[int, RoundPhase, bool]] = []

    def run(name: str) -> None:
        attested = owners[name]
        client, key = attested.client, attested.signing_key
        assert key is not None
        try:
            status = client.node_status()
            for r in range(1, fed.job.rounds + 1):
                while not (status.phase is RoundPhase.OPEN and status.round == r):
                    status = client.node_status(seen=status, wait_seconds=5.0)
                status = client.upload_for_status(update(name, r, 1.0), wait_seconds=5.0) or client.node_status()
                answered.append((r, status.phase, status.pending is not None))
                while status.rounds_completed < r and status.phase is not RoundPhase.SIGNING:
                    status = client.node_status(seen=status, wait_seconds=5.0)
                pending = status.pending or client.pending_receipt()
                verify_receipt(pending, attested.node_public_key_pem)
                status = client.acknowledge_for_status(sign_acknowledgement(key, owner=name, receipt=pending))
                assert status is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert node.wait(10).job_state is JobState.FINISHED
    # every owner's upload was answered at the seal, with the receipt to sign (else this test counts nothing)
    assert sorted(answered) == sorted((r, RoundPhase.SIGNING, True) for r in (1, 2) for _ in owners)

    with_receipt = [s for s in serialized if s.pending is not None]
    assert len(with_receipt) == fed.job.rounds  # once per seal: 3 per seal when each answer built its own
    # the signers of a round are answered with equal statuses (each read its own): one serialization per round too
    opened = [s for s in serialized if s.pending is None and s.phase is RoundPhase.OPEN and s.round == 2]
    assert len(opened) <= 1


def test_shared_answers_are_the_messages_protobuf_would_build() -> None:
    receipt = RoundReceipt(
        job_digest=bytes(32),
        round=3,
        previous_sha256=bytes(32),
        global_model_sha256=bytes(32),
        contributions=200,
        update_commitments=tuple(secrets.token_bytes(32) for _ in range(200)),
    )
    status = NodeStatus(
        round=3,
        phase=RoundPhase.SIGNING,
        contributions=200,
        rounds_total=5,
        global_model_sha256="ab" * 32,
        attempt=1,
        rounds_completed=2,
        job_state=JobState.RUNNING,
        pending=sign_receipt(receipt, ec.generate_private_key(ec.SECP256R1())),
        global_model=b"m" * 300,
    )
    answers = StatusAnswers()

    upload = pb.UploadAck.FromString(answers.upload(round_index=3, status=status))
    assert upload == pb.UploadAck(round=3, status=wire.status_to_proto(status))
    acknowledged = pb.AcknowledgeAck.FromString(answers.acknowledged(status))
    assert acknowledged == pb.AcknowledgeAck(status=wire.status_to_proto(status))
    assert pb.NodeStatus.FromString(answers.status(status)) == wire.status_to_proto(status)
    # the same bytes for every call answered with this status or an equal one (each signer reads its own)
    again = dataclasses.replace(status)
    assert again is not status
    assert answers.status(again) is answers.status(status)
    assert answers.acknowledged(again) is answers.acknowledged(status)
    assert answers.upload(round_index=3, status=again) is answers.upload(round_index=3, status=status)
    assert answers.serialized == 1
    # another status is serialized anew (a stale answer would tell an owner the wrong round)
    moved = dataclasses.replace(status, phase=RoundPhase.OPEN, round=4, pending=None)
    assert pb.AcknowledgeAck.FromString(answers.acknowledged(moved)).status.round == 4
    assert answers.serialized == 2

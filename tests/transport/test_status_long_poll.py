"""The status long poll, over real gRPC and TLS: a waiting data owner is told when a round opens or seals.

A data owner with nothing to do asks for the status with the last one it saw; the node answers when it changes
(the call parked on the node's status changes) or after the wait, which it caps at STATUS_WAIT_MAX_SECONDS. These
tests make the change happen while the call waits and give it less than that cap to answer: a node that answered
only when the wait ran out fails them, and so does one that answered with the unchanged status.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from transport_harness import Federation, model, update

from enclavefl.core.messages import RoundPhase
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.grpc_servicer import STATUS_WAIT_MAX_SECONDS

pytestmark = pytest.mark.filterwarnings("ignore")


def _in_thread(call: Callable[[], NodeStatus]) -> tuple[threading.Thread, list[NodeStatus]]:
    got: list[NodeStatus] = []
    thread = threading.Thread(target=lambda: got.append(call()), daemon=True)
    thread.start()
    return thread, got


def test_a_waiting_owner_hears_that_the_first_round_opened(federation: Federation) -> None:
    node = federation.node(initial=False)
    alice = federation.connect(node, "alice")
    waiting = alice.client.node_status()
    assert waiting.job_state is JobState.AWAITING_MODEL

    thread, got = _in_thread(lambda: alice.client.node_status(seen=waiting, wait_seconds=60))
    thread.join(0.3)
    assert thread.is_alive()  # nothing changed: the call waits
    session = ModelOwnerSession.connect(
        node.address, job=federation.job, policy=federation.policy, credentials=federation.model_owner
    )
    session.submit_initial_model(model())
    thread.join(STATUS_WAIT_MAX_SECONDS - 1)  # answered because the job started, not because the wait ran out

    assert not thread.is_alive()
    assert got and got[0] != waiting and got[0].job_state is JobState.RUNNING
    session.close()


def test_a_contributor_hears_that_its_round_sealed(federation_factory: Callable[..., Federation]) -> None:
    fed = federation_factory(min_contributions=2)
    node = fed.node()
    owners = {name: fed.connect(node, name) for name in ("alice", "bob", "carol")}
    status = owners["alice"].client.node_status()
    while status.phase is not RoundPhase.OPEN:
        status = owners["alice"].client.node_status(seen=status, wait_seconds=60)
    owners["alice"].client.upload_update(update("alice", 1, 1.0))
    owners["bob"].client.upload_update(update("bob", 1, 2.0))
    after_two = owners["alice"].client.node_status()
    assert after_two.phase is RoundPhase.OPEN and after_two.contributions == 2

    thread, got = _in_thread(lambda: owners["alice"].client.node_status(seen=after_two, wait_seconds=60))
    owners["carol"].client.upload_update(update("carol", 1, 3.0))  # every enrolled owner: the round seals
    thread.join(STATUS_WAIT_MAX_SECONDS - 1)

    assert not thread.is_alive()
    seen_changes = got[0]
    while seen_changes.phase is RoundPhase.OPEN:  # the third contribution is a change too; the seal follows
        seen_changes = owners["alice"].client.node_status(seen=seen_changes, wait_seconds=60)
    assert seen_changes.phase is RoundPhase.SIGNING and seen_changes.round == 1


def test_without_a_change_the_poll_answers_the_same_status_after_its_wait(federation: Federation) -> None:
    node = federation.node(initial=False)
    alice = federation.connect(node, "alice")
    waiting = alice.client.node_status()

    again = alice.client.node_status(seen=waiting, wait_seconds=0.2)

    assert again == waiting


def test_a_seen_status_that_is_no_status_is_answered_at_once(federation: Federation) -> None:
    from enclavefl.transport.proto import enclavefl_pb2 as pb
    from enclavefl.transport.wire import status_seen

    malformed = pb.StatusRequest(seen=pb.NodeStatus(phase="no-such-phase", job_state="running"), wait_ms=60_000)

    assert status_seen(malformed) is None  # the node answers the current status rather than failing the call
    assert status_seen(pb.StatusRequest(seen=pb.NodeStatus(phase="open", job_state="running"))) is None  # no wait


def test_the_node_reads_only_the_round_view_of_a_seen_status() -> None:
    """What a caller says it saw is a claim the node only compares (NodeStatus.round_view): nothing else of it is
    parsed, so the node carries no parser of receipts sent by callers (the owners' is transport/owner_wire.py)."""
    from enclavefl.core.messages import RoundPhase
    from enclavefl.transport.api import JobState
    from enclavefl.transport.proto import enclavefl_pb2 as pb
    from enclavefl.transport.wire import status_seen

    claimed = pb.NodeStatus(round=3, phase="signing", attempt=2, rounds_completed=2, job_state="running")
    claimed.pending.body, claimed.released_head_sha256 = b"not a receipt", b"short"

    seen = status_seen(pb.StatusRequest(seen=claimed, wait_ms=1000))

    assert seen is not None
    assert seen.round_view() == (3, RoundPhase.SIGNING, 2, 2, JobState.RUNNING)
    assert seen.pending is None and seen.released_head_sha256 == b""

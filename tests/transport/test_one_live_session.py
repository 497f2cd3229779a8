"""Issue 22 item 6 (second half): one data owner's key, one live session. Two processes holding alice's key used to
be both admitted, and the real alice silently lost rounds to the other (DuplicateUpdate, WrongRound).

Now the newer join replaces the older session and both are told: the join's answer counts the sessions it replaced
(the newer client logs it), and every later call on the replaced session is refused with SessionReplaced, which
the owner's loop does not answer by joining again (the two would take turns replacing each other). Real gRPC over
TLS on loopback; the two clients are two connections as two processes would open them.
"""

from __future__ import annotations

import logging
import threading

import pytest
import torch
from test_round_trips import TASK
from transport_harness import Federation

from enclavefl.errors import SessionReplaced
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.task import TensorData

pytestmark = pytest.mark.filterwarnings("ignore")


def test_a_second_live_session_for_one_key_replaces_the_first_and_both_are_told(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    node = federation.node()
    first = federation.connect(node, "alice")
    assert first.client.node_status().rounds_total == federation.job.rounds  # a live session

    with caplog.at_level(logging.WARNING, logger="enclavefl.transport.grpc_client"):
        second = federation.connect(node, "alice")  # another process with alice's key joins

    assert "held 1 live session(s) for data-owner 'alice': this join replaced them" in caplog.text
    with pytest.raises(SessionReplaced, match="replaced by a newer join with the same key: another process"):
        first.client.node_status()
    assert second.client.node_status().rounds_total == federation.job.rounds
    assert node.rejections["SessionReplaced"] == 1
    bob = federation.connect(node, "bob")  # other owners' sessions are untouched
    assert bob.client.node_status().rounds_total == federation.job.rounds
    second.client.node_status()  # and the newer session stays alive


def test_the_replaced_owners_loop_stops_with_the_reason_instead_of_joining_again(federation: Federation) -> None:
    node = federation.node()
    older = federation.connect(node, "alice")
    reconnects: list[str] = []

    def reconnect() -> object:  # what the CLI's owner does on a node that went away: attest and join again
        reconnects.append("alice")
        return federation.connect(node, "alice")

    owner = DataOwner(
        name="alice", task=TASK, data=TensorData(x=torch.ones(4, 20), y=torch.ones(4, 30)), job=federation.job
    )
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            run_data_owner(owner, older, wait_seconds=0.2, reconnect=reconnect)  # type: ignore[arg-type]
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    federation.connect(node, "alice")  # the other process joins
    thread.join(30)

    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], SessionReplaced), outcome
    assert reconnects == []  # it did not take the session back

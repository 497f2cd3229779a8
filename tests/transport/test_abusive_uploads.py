"""Issue 12 part 3, over real gRPC/TLS: an enrolled owner's weight or values cannot poison the released model.

Before the fix, both attacks below released a model the attacker chose: 2**63 declared examples made the mean
exactly the attacker's update, and finite values of 3e38 x 10 examples released [inf, ...] (the job was dead).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from transport_harness import Federation, sign_sealed_round, update

from enclavefl.core.messages import RoundPhase
from enclavefl.errors import TooManyExamples, UpdateExcluded

pytestmark = pytest.mark.filterwarnings("ignore")


def wait_for(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.02)


def test_an_owner_declaring_2_pow_63_examples_is_refused_and_the_round_completes(federation: Federation) -> None:
    node = federation.node()
    owners = {n: federation.connect(node, n) for n in ("alice", "bob", "carol")}
    wait_for(lambda: node.node_status().phase is RoundPhase.OPEN, "round 1 to open")
    with pytest.raises(TooManyExamples, match="declares 9223372036854775808 examples"):
        owners["carol"].client.upload_update(update("carol", 1, 100.0, n=2**63))
    owners["alice"].client.upload_update(update("alice", 1, 1.0, n=10))
    owners["bob"].client.upload_update(update("bob", 1, 3.0, n=30))
    owners["carol"].client.upload_update(update("carol", 1, 100.0, n=1))  # within the bound: it counts
    sign_sealed_round(node, owners, 1)
    wait_for(lambda: node.node_status().rounds_completed == 1, "round 1 to be released")
    summary = node.summaries_after(0)[0][0]
    assert summary.rejected == {"TooManyExamples": 1}
    assert summary.contributions == 3
    np.testing.assert_allclose(node.worker.global_model["w"], (10 + 90 + 100) / 41, rtol=1e-6)  # type: ignore[union-attr]


def test_an_overflowing_update_is_left_out_of_the_redone_round(federation_factory: Callable[..., Federation]) -> None:
    federation = federation_factory(round_deadline_seconds=2.0)  # the redone round closes at its deadline
    node = federation.node()
    owners = {n: federation.connect(node, n) for n in ("alice", "bob", "carol")}
    wait_for(lambda: node.node_status().phase is RoundPhase.OPEN, "round 1 to open")
    owners["carol"].client.upload_update(update("carol", 1, 3e38, n=10))  # finite, accepted at ingest
    owners["alice"].client.upload_update(update("alice", 1, 1.0, n=10))
    owners["bob"].client.upload_update(update("bob", 1, 3.0, n=30))
    # every enrolled owner is in: the node closes the round, finds the aggregate infinite and reopens it
    wait_for(lambda: node.node_status().attempt == 2, "round 1 to be reopened")
    assert node.receipts() == ()  # nothing was sealed, signed or released
    with pytest.raises(UpdateExcluded, match=r"'carol'.*round 1"):
        owners["carol"].client.upload_update(update("carol", 1, 1.0))
    owners["alice"].client.upload_update(update("alice", 1, 1.0, n=10))
    owners["bob"].client.upload_update(update("bob", 1, 3.0, n=30))
    signers = {n: owners[n] for n in ("alice", "bob")}  # the contributors, also a majority: enough to release
    sign_sealed_round(node, signers, 1, timeout=20.0)  # the deadline closes it (carol never gets in)
    wait_for(lambda: node.node_status().rounds_completed == 1, "round 1 to be released")
    summary = node.summaries_after(0)[0][0]
    assert summary.rejected == {"NonFiniteAggregate": 1, "UpdateExcluded": 1}
    assert summary.contributions == 2
    assert node.rejections["NonFiniteAggregate"] == 1
    np.testing.assert_allclose(node.worker.global_model["w"], 2.5)  # type: ignore[union-attr]

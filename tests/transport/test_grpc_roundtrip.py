"""A whole job over real gRPC and TLS: model owner submits, owners attest, join and stream, receipts verify."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from transport_harness import CHUNK, OWNERS, Federation, model, sign_sealed_round, update

from enclavefl.core.receipt_checks import ReceiptTracker
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.transport.api import JobState

pytestmark = pytest.mark.filterwarnings("ignore")


def test_job_runs_end_to_end_and_the_final_model_matches_its_receipts(federation: Federation) -> None:
    node = federation.node(initial=False)
    session = ModelOwnerSession.connect(
        node.address,
        job=federation.job,
        policy=federation.policy,
        credentials=federation.model_owner,
        chunk_bytes=CHUNK,
    )
    owners = {name: federation.connect(node, name) for name in OWNERS}
    watched: list[int] = []
    watcher = threading.Thread(target=lambda: watched.extend(s.round for s in session.watch()))
    watcher.start()

    session.submit_initial_model(model())
    for round_index in (1, 2):
        while node.node_status().phase.value != "open" or node.node_status().round != round_index:
            threading.Event().wait(0.02)
        for value, (name, attested) in enumerate(owners.items(), start=1):
            attested.client.upload_update(update(name, round_index, float(value), n=value))
        sign_sealed_round(node, owners, round_index)
        while node.node_status().rounds_completed < round_index:
            threading.Event().wait(0.02)
    final_status = node.wait(timeout=10)
    final = session.download_final()
    watcher.join(timeout=10)

    expected = (1 * 1 + 2 * 2 + 3 * 3) / 6
    assert final_status.job_state is JobState.FINISHED
    np.testing.assert_allclose(final.weights["w"], np.full((20, 30), expected, np.float32), rtol=1e-6)
    assert [r.round for r in final.receipts] == [1, 2]
    assert all(r.contributions == 3 for r in final.receipts)
    assert watched == [1, 2]
    tracker = ReceiptTracker(job_digest=federation.job.digest())
    head = tracker.observe(owners["alice"].client.receipts(), owners["alice"].node_public_key_pem)
    assert head is not None and head.round == 2


def test_a_model_larger_than_one_message_limit_streams_in_both_directions(federation: Federation) -> None:
    node = federation.node()
    alice = federation.connect(node, "alice")
    while node.node_status().phase.value != "open":
        threading.Event().wait(0.02)

    data = alice.client.global_model_bytes(1)
    digest = alice.client.upload_update(update("alice", 1, 5.0))

    assert len(data) > 2 * CHUNK  # several chunks, each under the gRPC limit of CHUNK + margin
    assert len(digest) == 32

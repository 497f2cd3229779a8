"""The node refuses bad calls with precise errors, counts them, and completes the round with the valid updates."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from transport_harness import Federation, model, sign_sealed_round, update

from enclavefl.core.codec import encode_weights
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import (
    DuplicateUpdate,
    MalformedUpdate,
    NonFiniteValues,
    NotEnrolled,
    ShapeMismatch,
    UpdateTooLarge,
    WrongRound,
)
from enclavefl.owner.attested import connect_data_owner
from enclavefl.transport.grpc_client import NodeClient
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")


def raw(name: str, payload: bytes, round_index: int = 1) -> UpdateMessage:
    return UpdateMessage.of(owner=name, round=round_index, num_examples=1, payload=payload)


def test_bad_updates_are_refused_and_counted_while_the_round_completes(federation: Federation) -> None:
    node = federation.node()
    alice, bob, carol = (federation.connect(node, n) for n in ("alice", "bob", "carol"))
    while node.node_status().phase.value != "open":
        threading.Event().wait(0.02)
    good = encode_weights(model(1.0))
    nan = model(1.0).copy()
    nan["w"][3, 4] = np.nan
    wrong_shape = encode_weights(ModelWeights({"w": np.ones((30, 20), np.float32), "b": np.ones(30, np.float32)}))
    stranger = OwnerCredentials.generate("alice")  # claims an enrolled name with a key the job does not enroll

    alice.client.upload_update(update("alice", 1, 1.0))
    with pytest.raises(NotEnrolled, match="does not verify under the enrolled key"):
        connect_data_owner(
            node.address, name="alice", job=federation.job, policy=federation.policy, credentials=stranger
        )
    with pytest.raises(NotEnrolled, match="no valid session"):
        NodeClient(node.address, certificate_pem=node.certificate_pem).upload_update(update("mallory", 1, 1.0))
    with pytest.raises(DuplicateUpdate, match="already contributed to round 1"):
        alice.client.upload_update(update("alice", 1, 2.0))
    with pytest.raises(WrongRound, match="open round is 1"):
        carol.client.upload_update(update("carol", 2, 1.0))
    with pytest.raises(MalformedUpdate, match="truncated"):
        carol.client.upload_update(raw("carol", good[:-100]))
    with pytest.raises(UpdateTooLarge, match="more than"):
        carol.client.upload_update(raw("carol", good + b"\x00" * 4096))
    with pytest.raises(NonFiniteValues, match="'w': 1 value"):
        carol.client.upload_update(raw("carol", encode_weights(nan)))
    with pytest.raises(ShapeMismatch, match=r"shape \[30, 20\]"):
        carol.client.upload_update(raw("carol", wrong_shape))
    bob.client.upload_update(update("bob", 1, 2.0))
    carol.client.upload_update(update("carol", 1, 3.0))
    sign_sealed_round(node, {"alice": alice, "bob": bob, "carol": carol}, 1)
    while node.node_status().rounds_completed < 1:
        threading.Event().wait(0.02)

    summary = node.summaries_after(0)[0][0]
    assert summary.contributions == 3
    assert summary.rejected == {
        "DuplicateUpdate": 1,
        "WrongRound": 1,
        "MalformedUpdate": 1,
        "UpdateTooLarge": 1,
        "NonFiniteValues": 1,
        "ShapeMismatch": 1,
        "NotEnrolled": 1,
    }
    assert node.rejections["NotEnrolled"] == 2  # the refused join and the session-less upload
    np.testing.assert_allclose(node.worker.global_model["w"], np.full((20, 30), 2.0, np.float32))  # type: ignore[union-attr]
    assert node.receipts()[0].receipt.contributions == 3

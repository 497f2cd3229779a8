"""An update that fits in one message travels in one (UploadSmallUpdate): the same checks, counted the same way.

A seed job's round is mostly round trips, and a client-streamed call costs a thread and a stream's set-up on both
sides for a few bytes. The one-message call shares UploadUpdate's code path after authentication, so what it
accepts and refuses is the same; what it will not carry is anything above INLINE_MODEL_BYTES.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest
from transport_harness import Federation, sign_sealed_round, update

from enclavefl.core.codec import encode_weights
from enclavefl.core.messages import RoundPhase
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import MalformedUpdate, NotEnrolled, UpdateTooLarge
from enclavefl.owner.attested import connect_data_owner
from enclavefl.transport.api import INLINE_MODEL_BYTES
from enclavefl.transport.owner_wire import error_from_rpc
from enclavefl.transport.proto import enclavefl_pb2 as pb

pytestmark = pytest.mark.filterwarnings("ignore")


def test_small_updates_go_in_one_message_and_count_like_streamed_ones(federation: Federation) -> None:
    node = federation.node()
    job, policy = federation.job, federation.policy
    owners = {  # the default chunk size: the harness model (2.5 kB) fits in one message
        name: connect_data_owner(node.address, name=name, job=job, policy=policy, credentials=federation.owners[name])
        for name in ("alice", "bob", "carol")
    }
    wait_until(lambda: node.node_status().phase is RoundPhase.OPEN)
    with pytest.raises(MalformedUpdate):  # refused like a stream: a payload that is no safetensors file
        owners["alice"].client.upload_update(
            UpdateMessage.of(owner="alice", round=1, num_examples=1, payload=b"x" * 64)
        )
    sent_before = owners["alice"].client.bytes_sent
    owners["alice"].client.upload_update(update("alice", 1, 1.0))
    owners["bob"].client.upload_update(update("bob", 1, 3.0))
    owners["carol"].client.upload_update(update("carol", 1, 2.0))
    assert owners["alice"].client.bytes_sent - sent_before == len(encode_weights(_model_of(1.0)))
    sign_sealed_round(node, owners, 1)
    wait_until(lambda: node.node_status().rounds_completed == 1)
    assert node.worker is not None
    np.testing.assert_allclose(np.asarray(node.worker.global_model["w"]), 2.0)
    assert node.summaries_after(0)[0][0].rejected == {"MalformedUpdate": 1}


def test_a_one_message_upload_above_the_limit_is_refused_and_counted(federation: Federation) -> None:
    node = federation.node()
    alice = federation.connect(node, "alice")
    wait_until(lambda: node.node_status().phase is RoundPhase.OPEN)
    meta = pb.UploadMetadata(round=1, num_examples=1, commitment_salt=bytes(32), commitment=bytes(32))
    part = pb.UploadPart(metadata=meta, data=bytes(INLINE_MODEL_BYTES + 1))
    with pytest.raises(UpdateTooLarge, match="send it as a stream"):
        alice.client._call(lambda: alice.client._stub.UploadSmallUpdate(part, **alice.client._kw()))
    assert node.rejections["UpdateTooLarge"] == 1
    alice.client.upload_update(update("alice", 1, 1.0))  # streamed (the harness's 1 kB chunks): still taken
    assert node.node_status().contributions == 1


def _model_of(value: float) -> ModelWeights:
    from transport_harness import model

    return model(value)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_one_message_upload_needs_a_session(federation: Federation) -> None:
    node = federation.node()
    alice = federation.connect(node, "alice")
    for size in (16, INLINE_MODEL_BYTES + 1):  # within the limit and above it: no session, nothing is read
        part = pb.UploadPart(metadata=pb.UploadMetadata(round=1), data=bytes(size))
        with pytest.raises(grpc.RpcError) as refused:
            alice.client._stub.UploadSmallUpdate(part, timeout=10)  # no session metadata
        assert isinstance(error_from_rpc(refused.value), NotEnrolled)
    assert node.server.servicer.uploads_started == 0

"""The node's round loop: deadlines, K, retry/stop on failure, and stragglers that never finish their upload."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "transport"))
from transport_harness import (
    Federation,
    federation_factory,
    model,
    sign_sealed_round,
    stalled_upload,
    update,
    wait_open,
)

from enclavefl.core.codec import encode_weights
from enclavefl.transport.api import JobState

__all__ = ["federation_factory"]
pytestmark = pytest.mark.filterwarnings("ignore")


def test_round_closes_at_the_deadline_with_k_of_n_updates(federation_factory: object) -> None:
    fed: Federation = federation_factory(rounds=1, round_deadline_seconds=0.5)  # type: ignore[operator]
    node = fed.node()
    owners = [fed.connect(node, n) for n in ("alice", "bob")]
    wait_open(node, 1)

    for i, o in enumerate(owners):
        o.client.upload_update(update(("alice", "bob")[i], 1, 1.0))
    sign_sealed_round(node, {"alice": owners[0], "bob": owners[1]}, 1)
    status = node.wait(timeout=10)

    assert status.job_state is JobState.FINISHED
    assert node.receipts()[0].receipt.contributions == 2


def test_a_failed_round_is_reopened_with_the_same_number_under_retry(federation_factory: object) -> None:
    fed: Federation = federation_factory(rounds=1, round_deadline_seconds=0.5, on_round_failure="retry")  # type: ignore[operator]
    node = fed.node()
    alice, bob = fed.connect(node, "alice"), fed.connect(node, "bob")
    wait_open(node, 1)
    alice.client.upload_update(update("alice", 1, 1.0))

    wait_open(node, 1, attempt=2)  # attempt 1 closed with 1 < K = 2: nothing released, round 1 re-opened
    alice.client.upload_update(update("alice", 1, 1.0))
    bob.client.upload_update(update("bob", 1, 3.0))
    sign_sealed_round(node, {"alice": alice, "bob": bob}, 1)
    status = node.wait(timeout=10)

    assert status.job_state is JobState.FINISHED
    assert len(node.receipts()) == 1
    assert node.worker is not None and float(node.worker.global_model["w"][0, 0]) == 2.0


def test_a_failed_round_ends_the_job_under_stop(federation_factory: object) -> None:
    fed: Federation = federation_factory(rounds=2, round_deadline_seconds=0.3, on_round_failure="stop")  # type: ignore[operator]
    node = fed.node()
    alice = fed.connect(node, "alice")
    wait_open(node, 1)
    alice.client.upload_update(update("alice", 1, 1.0))

    status = node.wait(timeout=10)

    assert status.job_state is JobState.FAILED
    assert "round 1 failed" in status.job_message and "at least 2" in status.job_message
    assert node.receipts() == ()


def test_an_owner_that_stalls_mid_upload_does_not_block_the_round(federation_factory: object) -> None:
    fed: Federation = federation_factory(rounds=1, round_deadline_seconds=0.5)  # type: ignore[operator]
    node = fed.node(staging_slots=2)
    alice, bob, carol = (fed.connect(node, n) for n in ("alice", "bob", "carol"))
    wait_open(node, 1)
    stall = threading.Event()
    payload = encode_weights(model(9.0))

    errors: list[BaseException] = []

    def carol_uploads() -> None:
        try:
            carol.client._stub.UploadUpdate(
                stalled_upload(payload, round_index=1, stall=stall, timeout=10), **carol.client._kw()
            )
        except grpc.RpcError as exc:
            errors.append(exc)

    straggler = threading.Thread(target=carol_uploads)
    straggler.start()
    alice.client.upload_update(update("alice", 1, 1.0))
    bob.client.upload_update(update("bob", 1, 3.0))
    sign_sealed_round(node, {"alice": alice, "bob": bob}, 1)
    status = node.wait(timeout=10)
    stall.set()
    straggler.join(10)

    assert status.job_state is JobState.FINISHED
    assert node.receipts()[0].receipt.contributions == 2
    # the client may see its call end before the node's handler thread has counted the refusal
    deadline = time.monotonic() + 5
    while node.rejections["MalformedUpdate"] + node.rejections["WrongRound"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.rejections["MalformedUpdate"] + node.rejections["WrongRound"] == 1

"""A job that understates its privacy cost is refused by a data owner before it sends anything, and by the
enclave when the schedule does not cover the job's rounds."""

from __future__ import annotations

import dataclasses
import time

import pytest
from dp_tables import dp_job

from enclavefl.core.update_message import UpdateMessage
from enclavefl.enclave.strategies import build_job_strategy
from enclavefl.errors import EpsilonScheduleMismatch, JobSpecError
from enclavefl.owner.attested import attest_node
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import NodeStatus


class RecordingNode:
    """A node connection that records every call; the test asserts none was made."""

    pinned_spki_sha256 = bytes(32)

    def __init__(self) -> None:
        self.calls: list[str] = []

    def attest(self, nonce: bytes) -> AttestationBundle:
        self.calls.append("attest")
        raise AssertionError("attest must not be reached")

    def node_status(self, *, seen: NodeStatus | None = None, wait_seconds: float = 0.0) -> NodeStatus:
        self.calls.append("status")
        raise AssertionError("status must not be reached")

    def global_model_bytes(self, round_index: int) -> bytes:
        self.calls.append("download")
        raise AssertionError("download must not be reached")

    def upload_update(self, message: UpdateMessage) -> bytes:
        self.calls.append("upload")
        raise AssertionError("upload must not be reached")


def test_a_data_owner_refuses_an_understated_schedule_before_contacting_the_node() -> None:
    honest = dp_job(rounds=3)
    assert honest.dp is not None
    understated = [0.001, 0.002, 0.003]
    job = dataclasses.replace(honest, dp={**honest.dp, "epsilon_schedule": understated})
    node = RecordingNode()

    with pytest.raises(EpsilonScheduleMismatch, match="after round 1"):  # an owner's first step with any node
        attest_node(node, job=job, policy=AttestationPolicy.strict(), now=int(time.time()))  # type: ignore[arg-type]
    assert node.calls == []


def test_the_enclave_refuses_a_schedule_that_does_not_cover_every_round() -> None:
    honest = dp_job(rounds=3)
    assert honest.dp is not None
    job = dataclasses.replace(honest, rounds=5)  # the schedule still lists 3 rounds

    with pytest.raises(JobSpecError, match="3 entries for 5 rounds"):
        build_job_strategy(job)

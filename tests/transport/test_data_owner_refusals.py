"""A data owner refuses a node before sending anything: each mismatch raises its own error, no update leaves."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from transport_harness import Federation, update

from enclavefl.enclave.node import AggregatorNode
from enclavefl.errors import (
    CertificateMismatch,
    JobDigestMismatch,
    MrEnclaveMismatch,
    NonceMismatch,
    SimulationNotAllowed,
)
from enclavefl.tee.evidence import AttestationBundle

pytestmark = pytest.mark.filterwarnings("ignore")


def assert_nothing_sent(node: AggregatorNode) -> None:
    assert node.server.authority.joins == 0
    assert node.server.servicer.uploads_started == 0


def test_mrenclave_outside_the_policy_is_refused(federation: Federation) -> None:
    node = federation.node()
    policy = dataclasses.replace(federation.policy, allowed_mrenclaves=frozenset({b"\x11" * 32}))

    with pytest.raises(MrEnclaveMismatch):
        federation.connect(node, "alice", policy=policy)

    assert_nothing_sent(node)


def test_simulated_evidence_is_refused_without_allow_simulation(federation: Federation) -> None:
    node = federation.node()
    policy = dataclasses.replace(federation.policy, simulation_root_ca_der=None)

    with pytest.raises(SimulationNotAllowed):
        federation.connect(node, "alice", policy=policy)

    assert_nothing_sent(node)


class ReplayingNode(AggregatorNode):
    """A test double: answers every nonce with the first bundle it produced (a replay)."""

    _recorded: AttestationBundle | None = None

    def attest(self, nonce: bytes) -> AttestationBundle:
        if self._recorded is None:
            self._recorded = super().attest(bytes(32))
        return self._recorded


def test_replayed_evidence_for_an_old_nonce_is_refused(federation: Federation) -> None:
    node = ReplayingNode(job=federation.job, tee=federation.tee, initial_model=None).serve_grpc().start()
    federation.nodes.append(node)

    with pytest.raises(NonceMismatch, match="replayed or stale"):
        federation.connect(node, "alice")

    assert_nothing_sent(node)


def test_a_node_running_another_job_is_refused(federation: Federation) -> None:
    node = federation.node()
    owners_job = dataclasses.replace(federation.job, rounds=federation.job.rounds + 1)

    with pytest.raises(JobDigestMismatch, match="another job"):
        federation.connect(node, "alice", job=owners_job)

    assert_nothing_sent(node)


def test_a_node_presenting_another_certificate_after_attestation_is_refused(federation: Federation) -> None:
    first = federation.node()
    alice = federation.connect(first, "alice")
    while first.node_status().phase.value != "open":
        threading.Event().wait(0.02)
    port = first.port
    first.stop(0)
    impostor = federation.node(port=port)  # same address, fresh identity: another certificate

    with pytest.raises(CertificateMismatch, match="another TLS certificate"):
        alice.client.upload_update(update("alice", 1, 1.0))

    assert impostor.port == port
    assert_nothing_sent(impostor)

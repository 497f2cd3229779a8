"""Issue 12 part 3: one party cannot starve the node. Stream and watcher caps, Attest rate limits, session expiry.

Measured before: one enrolled party opening 32 Watch streams took every RPC thread; other owners' Status and an
unauthenticated Attest then hit their deadlines. Each attack below runs over real gRPC/TLS on loopback.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from transport_harness import Federation

from enclavefl.errors import ConfigError, NodeBusy, NotEnrolled, SessionExpired
from enclavefl.transport.auth import JoinAuthority, Role, join_transcript
from enclavefl.transport.grpc_client import NodeClient
from enclavefl.transport.limits import CallGate, NodeLimits
from enclavefl.transport.proto import enclavefl_pb2 as pb

pytestmark = pytest.mark.filterwarnings("ignore")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the gate on its own ---------------------------------------------------------------------------------------
def test_streams_are_capped_per_party_and_in_total_and_come_back_when_released() -> None:
    gate = CallGate(NodeLimits(max_streams_per_peer=2, max_streams=3))
    a1, a2 = gate.stream("alice"), gate.stream("alice")
    with pytest.raises(NodeBusy, match=r"max_streams_per_peer \(--max-streams-per-peer\): alice already has 2"):
        gate.stream("alice")
    b1 = gate.stream("bob")
    with pytest.raises(NodeBusy, match=r"node limit max_streams .*3 streams"):
        gate.stream("carol")
    a1.release()
    a1.release()  # idempotent: a permit released twice does not free two places
    c1 = gate.stream("carol")
    with pytest.raises(NodeBusy, match="max_streams "):
        gate.stream("dave")
    for permit in (a2, b1, c1):
        permit.release()
    assert gate.refused == {"max_streams_per_peer": 1, "max_streams": 2}


def test_watchers_are_capped_per_party_and_in_total() -> None:
    gate = CallGate(NodeLimits(max_watchers_per_peer=1, max_watchers=2, max_streams_per_peer=4))
    gate.stream("alice", watch=True)
    with pytest.raises(NodeBusy, match="max_watchers_per_peer"):
        gate.stream("alice", watch=True)
    gate.stream("alice")  # a download is still allowed: only watchers are full for alice
    gate.stream("bob", watch=True)
    with pytest.raises(NodeBusy, match="max_watchers "):
        gate.stream("carol", watch=True)


def test_unauthenticated_calls_are_rate_limited_per_connection_and_overall() -> None:
    clock = FakeClock()
    gate = CallGate(NodeLimits(attest_per_second=1.0, attest_per_second_total=2.0), monotonic=clock)
    gate.unauthenticated("conn-a")
    gate.unauthenticated("conn-a")  # a burst of twice the rate
    with pytest.raises(NodeBusy, match=r"attest_per_second .*more than 1 times a second"):
        gate.unauthenticated("conn-a")
    clock.now += 1.0
    gate.unauthenticated("conn-a")  # one more token a second later
    for name in ("b", "c", "d"):
        gate.unauthenticated(name)
    with pytest.raises(NodeBusy, match="attest_per_second_total"):
        gate.unauthenticated("e")
    assert gate.served_unauthenticated == 6


def test_quotes_in_flight_are_capped_and_never_queued() -> None:
    gate = CallGate(NodeLimits(max_attest_in_flight=1))
    permit = gate.attesting()
    with pytest.raises(NodeBusy, match="max_attest_in_flight"):
        gate.attesting()
    permit.release()
    gate.attesting()


def test_held_calls_are_capped_per_party_and_in_total_and_come_back_when_released() -> None:
    gate = CallGate(NodeLimits(max_held_per_peer=2, max_held=3))
    a1, a2 = gate.held("alice"), gate.held("alice")
    with pytest.raises(NodeBusy, match=r"max_held_per_peer \(--max-held-per-peer\): alice already has 2 waiting"):
        gate.held("alice")
    b1 = gate.held("bob")
    with pytest.raises(NodeBusy, match=r"node limit max_held .*3 waiting calls"):
        gate.held("carol")
    assert gate.held_now == 3
    a1.release()
    a1.release()  # idempotent
    gate.held("carol")
    for permit in (a2, b1):
        permit.release()
    assert gate.held_now == 1
    assert gate.refused == {"max_held_per_peer": 1, "max_held": 1}


@pytest.mark.parametrize(
    "change", [{"max_streams": 0}, {"max_held": 0}, {"max_streams_per_peer": 0}, {"attest_per_second": 0}]
)
def test_limits_that_cannot_work_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        NodeLimits(**change)  # type: ignore[arg-type]


def test_sessions_expire_and_a_rejoin_gives_a_new_one(federation: Federation) -> None:
    clock = FakeClock()
    creds = federation.owners["alice"]
    authority = JoinAuthority(
        job=federation.job, node_spki_sha256=b"\x01" * 32, monotonic=clock, session_lifetime_seconds=60.0
    )

    def join() -> bytes:
        challenge = authority.challenge()
        transcript = join_transcript(
            role=Role.DATA_OWNER,
            name="alice",
            job_digest=federation.job.digest(),
            node_spki_sha256=b"\x01" * 32,
            challenge=challenge,
        )
        signature = creds.private_key.sign(transcript, ec.ECDSA(hashes.SHA256()))
        token, _ = authority.join(role=Role.DATA_OWNER, name="alice", challenge=challenge, signature=signature)
        return token

    token = join()
    assert authority.peer(token, roles=(Role.DATA_OWNER,)).name == "alice"
    clock.now += 61.0
    with pytest.raises(SessionExpired, match="older than 60 s: join again"):
        authority.peer(token, roles=(Role.DATA_OWNER,))
    with pytest.raises(SessionExpired):  # told again (the client then knows to join)
        authority.peer(token, roles=(Role.DATA_OWNER,))
    fresh = [join() for _ in range(6)]
    for old in (token, *fresh[:-1]):  # a data owner holds one session: repeated joins do not grow the node's memory
        with pytest.raises(NotEnrolled):
            authority.peer(old, roles=(Role.DATA_OWNER,))
    assert authority.peer(fresh[-1], roles=(Role.DATA_OWNER,)).name == "alice"


# --- the attacks over gRPC ------------------------------------------------------------------------------------
def raw_watch(client: NodeClient) -> Iterator[pb.RoundSummary]:
    """A Watch stream without the client's waiting on NodeBusy: what an abusive client does."""
    stream: Iterator[pb.RoundSummary] = client._stub.Watch(pb.WatchRequest(after_round=0), **client._kw(None))
    return stream


def test_an_owner_cannot_hold_more_than_its_watchers_and_others_are_still_served(federation: Federation) -> None:
    node = federation.node(limits=NodeLimits(max_watchers_per_peer=2, max_streams_per_peer=3))
    mallory = federation.connect(node, "carol")
    held = [raw_watch(mallory.client) for _ in range(2)]
    deadline = time.monotonic() + 10.0
    while node.server.gate.peak_watchers.get("data-owner 'carol'", 0) < 2:  # both reached the node
        assert time.monotonic() < deadline, "the two Watch streams never reached the node"
        time.sleep(0.01)
    attempts = [raw_watch(mallory.client) for _ in range(30)]  # what an abuser does: ask for as many as it can
    refused = [stream.exception(timeout=10.0) for stream in attempts]  # type: ignore[attr-defined]
    assert all(e is not None and e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused)
    assert "max_watchers_per_peer" in refused[0].details()
    # meanwhile an honest owner attests, joins and calls as usual, without waiting
    alice = federation.connect(node, "alice")
    assert alice.client.node_status().rounds_total == federation.job.rounds
    assert node.server.gate.refused["max_watchers_per_peer"] == 30
    for stream in held:
        stream.cancel()  # type: ignore[attr-defined]
    # the places come back when the streams end (a cancelled client included): carol may watch again
    deadline = time.monotonic() + 10.0
    while True:
        again = raw_watch(mallory.client)
        try:
            refused = again.exception(timeout=0.3) is not None  # type: ignore[attr-defined]
        except grpc.FutureTimeoutError:
            refused = False  # still open: accepted
        if not refused:
            break
        assert time.monotonic() < deadline, "the cancelled watchers' places never came back"
    again.cancel()  # type: ignore[attr-defined]


def test_an_attest_flood_from_one_connection_is_refused_while_another_owner_attests(federation: Federation) -> None:
    node = federation.node(limits=NodeLimits(attest_per_second=0.5))  # a burst of 1, then one every 2 s
    flooder = NodeClient(node.address, certificate_pem=node.certificate_pem)
    codes: list[grpc.StatusCode] = []
    for _ in range(40):
        try:
            flooder._stub.Attest(pb.AttestRequest(nonce=secrets.token_bytes(32)), timeout=5.0)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())  # type: ignore[attr-defined]
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 20  # however slow a loaded machine answers
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    alice = federation.connect(node, "alice")  # its own connection has its own budget
    assert alice.client.node_status().job_state.value == "running"
    flooder.close()


def test_an_expired_session_is_refused_and_the_client_joins_again(federation: Federation) -> None:
    node = federation.node(limits=NodeLimits(session_lifetime_seconds=1.0))
    alice = federation.connect(node, "alice")
    threading.Event().wait(1.2)
    with pytest.raises(grpc.RpcError) as raised:
        alice.client._stub.Status(pb.StatusRequest(), **alice.client._kw())
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "join again" in raised.value.details()  # type: ignore[attr-defined]
    joins = node.server.authority.joins
    assert alice.client.node_status().rounds_total == federation.job.rounds  # re-joined transparently
    assert node.server.authority.joins == joins + 1

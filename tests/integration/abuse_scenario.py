"""One round with N honest data owners and, optionally, an abusive enrolled one: real gRPC over real TLS on loopback.

The node runs in this process (an AggregatorNode on a simulated enclave, default limits); every owner is a thread
with its own channel that attests the node (dcap-qvl), joins with its enrolled key, uploads a tiny update, signs
the sealed round's receipt and waits for the release, polling Status as the owners' loop does.

The abuser ("mallory") is enrolled and takes part in the round, and meanwhile it opens as many Watch streams as
it can (holding every one it gets), downloads the global model in a loop, and floods Attest from two connections
as fast as they answer. Used by tests/integration/test_abuse_load.py and benchmarks/bench_abuse.py.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.attested import AttestedNode, connect_data_owner
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.grpc_client import NodeClient
from enclavefl.transport.limits import NodeLimits
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.proto import enclavefl_pb2 as pb

ABUSER = "mallory"
POLL_SECONDS = 0.25
MAX_ABUSIVE_STREAMS = 400  # bounded: the abuser stops asking after this many attempts
MAX_ATTEST_FLOOD = 3000  # Attest calls per flooding connection, at most


def model(value: float) -> ModelWeights:
    return ModelWeights({"w": np.full((8,), value, np.float32)})


@dataclass(slots=True, kw_only=True)
class AbuseCounts:
    streams_attempted: int = 0
    streams_refused: int = 0
    streams_accepted: int = 0  # over the whole run (a Watch accepted after the job ended ends at once)
    downloads_attempted: int = 0
    downloads_refused: int = 0
    attest_attempted: int = 0
    attest_served: int = 0
    attest_refused: int = 0
    other_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True, slots=True, kw_only=True)
class AbuseRun:
    owners: int
    abuser: bool
    round_seconds: float  # honest owners start -> the round is released
    completed: tuple[str, ...]  # honest owners that saw the released round with their update in its receipt
    failures: dict[str, str]
    contributions: int
    counts: AbuseCounts
    node_refused: dict[str, int]  # the node's own tally of limit refusals
    abuser_peak_streams: int  # the most streams the node let the abuser hold at once
    abuser_peak_watchers: int
    honest_busy_waits: int  # NodeBusy answers the honest clients waited out


def run_abuse_scenario(
    *,
    tee: TeeBackend,
    policy: AttestationPolicy,
    owners: int = 100,
    abuser: bool = True,
    timeout: float = 150.0,
    limits: NodeLimits | None = None,
) -> AbuseRun:
    names = [f"owner{i:03d}" for i in range(owners)] + ([ABUSER] if abuser else [])
    credentials = {name: OwnerCredentials.generate(name) for name in names}
    initial = model(0.0)
    job = JobSpec(
        name="abuse-load",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=owners,
        round_deadline_seconds=timeout,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        data_owners=tuple(
            DataOwnerSpec(name=n, certificate_pem=c.certificate_pem.decode()) for n, c in credentials.items()
        ),
    )
    released = threading.Event()
    node = AggregatorNode(job=job, tee=tee, initial_model=initial, on_round=lambda _: released.set())
    node.serve_grpc(limits=limits)
    node.start()
    stop = threading.Event()
    counts = AbuseCounts()
    clients: list[NodeClient] = []
    failures: dict[str, str] = {}
    completed: list[str] = []
    try:
        abusers = _start_abuser(node, job, policy, credentials[ABUSER], stop, counts, clients) if abuser else []
        start = time.perf_counter()

        def honest(name: str) -> None:
            try:
                attested = connect_data_owner(
                    node.address,
                    name=name,
                    job=job,
                    policy=policy,
                    credentials=credentials[name],
                    chunk_bytes=64 * 1024,
                )
                clients.append(attested.client)
                if _take_part(attested, name, job, value=1.0, deadline=time.monotonic() + timeout):
                    completed.append(name)
            except Exception as exc:  # reported per owner: the test names who failed and why
                failures[name] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=honest, args=(n,), daemon=True) for n in names if n != ABUSER]
        for thread in threads:
            thread.start()
        give_up = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, give_up - time.monotonic()))
        round_seconds = time.perf_counter() - start if released.is_set() else float("inf")
        stop.set()
        for thread in abusers:
            thread.join(10.0)
        receipts = node.receipts()
        return AbuseRun(
            owners=owners,
            abuser=abuser,
            round_seconds=round_seconds,
            completed=tuple(sorted(completed)),
            failures=failures,
            contributions=receipts[0].receipt.contributions if receipts else 0,
            counts=counts,
            node_refused=dict(node.server.gate.refused),
            abuser_peak_streams=node.server.gate.peak_streams.get(f"data-owner {ABUSER!r}", 0),
            abuser_peak_watchers=node.server.gate.peak_watchers.get(f"data-owner {ABUSER!r}", 0),
            honest_busy_waits=sum(c.busy_refusals for c in clients if c is not None),
        )
    finally:
        stop.set()
        for client in clients:
            client.close()
        node.stop(0)


def _take_part(attested: AttestedNode, name: str, job: JobSpec, *, value: float, deadline: float) -> bool:
    """Upload once the round is open, sign its sealed receipt, wait for its release; True if it lists our update."""
    client = attested.client
    _wait(client, lambda st: st.phase is RoundPhase.OPEN or st.rounds_completed >= 1, deadline)
    message = UpdateMessage.of(owner=name, round=1, num_examples=1, payload=encode_weights(model(value)))
    client.upload_update(message)
    _wait(client, lambda st: st.phase is RoundPhase.SIGNING or st.rounds_completed >= 1, deadline)
    if client.node_status().rounds_completed < 1:
        pending = client.pending_receipt()
        verify_receipt(pending, attested.node_public_key_pem)
        assert attested.signing_key is not None
        client.acknowledge(sign_acknowledgement(attested.signing_key, owner=name, receipt=pending))
    _wait(client, lambda st: st.rounds_completed >= 1, deadline)
    receipt = verify_receipt(client.receipts()[0], attested.node_public_key_pem)
    return message.header.commitment in receipt.update_commitments


def _wait(client: NodeClient, done: Callable[..., bool], deadline: float) -> None:
    while not done(client.node_status()):
        if time.monotonic() > deadline:
            raise TimeoutError("the round did not reach the expected phase in time")
        time.sleep(POLL_SECONDS * (0.5 + secrets.randbelow(1000) / 1000))  # owners do not poll in lockstep


def _start_abuser(
    node: AggregatorNode,
    job: JobSpec,
    policy: AttestationPolicy,
    creds: OwnerCredentials,
    stop: threading.Event,
    counts: AbuseCounts,
    clients: list[NodeClient],
) -> list[threading.Thread]:
    mallory = connect_data_owner(node.address, name=ABUSER, job=job, policy=policy, credentials=creds)
    clients.append(mallory.client)

    def take_part() -> None:  # mallory is enrolled: it also does its part, so the round can close at once
        try:
            _take_part(mallory, ABUSER, job, value=1.0, deadline=time.monotonic() + job.round_deadline_seconds)
        except Exception as exc:
            counts.other_errors.append(f"mallory's own round: {type(exc).__name__}: {exc}")

    def open_streams() -> None:
        stub, kw = mallory.client._stub, mallory.client._kw(None)
        streams = []
        for _ in range(MAX_ABUSIVE_STREAMS):  # as many as it can, holding every one it gets (it never reads them)
            if stop.wait(0.01):
                break
            streams.append(stub.Watch(pb.WatchRequest(after_round=0), **kw))
        stop.wait()
        for stream in streams:
            stream.cancel()  # type: ignore[attr-defined]  # a no-op for a call the node already ended
            refused = stream.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            counts.add(streams_attempted=1, streams_refused=int(refused), streams_accepted=int(not refused))

    def download() -> None:
        stub, kw = mallory.client._stub, mallory.client._kw()
        while not stop.is_set() and counts.downloads_attempted < 10 * MAX_ABUSIVE_STREAMS:
            try:
                for _ in stub.DownloadGlobalModel(pb.DownloadRequest(round=1), **kw):
                    pass
                counts.add(downloads_attempted=1)
            except grpc.RpcError as exc:
                busy = exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
                counts.add(downloads_attempted=1, downloads_refused=int(busy))

    def flood_attest() -> None:
        flooder = NodeClient(node.address, certificate_pem=node.certificate_pem)  # its own connection
        clients.append(flooder)
        for _ in range(MAX_ATTEST_FLOOD):
            if stop.is_set():
                break
            try:
                flooder._stub.Attest(pb.AttestRequest(nonce=secrets.token_bytes(32)), timeout=10.0)
                counts.add(attest_attempted=1, attest_served=1)
            except grpc.RpcError as exc:
                busy = exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
                counts.add(attest_attempted=1, attest_refused=int(busy))

    threads = [
        threading.Thread(target=t, daemon=True) for t in (take_part, open_streams, download, flood_attest, flood_attest)
    ]
    for thread in threads:
        thread.start()
    return threads

"""Shared pieces for the network tests: real gRPC over real TLS on loopback, in-process server threads."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
from enclavefl.core.update_message import UpdateMessage, commitment_of_payload, new_commitment_salt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.attested import AttestedNode, connect_data_owner
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.proto import enclavefl_pb2 as pb

pytestmark = pytest.mark.filterwarnings("ignore")
OWNERS = ("alice", "bob", "carol")
CHUNK = 1024  # small chunks so every model crosses many messages


def model(value: float = 0.0) -> ModelWeights:
    return ModelWeights({"w": np.full((20, 30), value, np.float32), "b": np.full((30,), value, np.float32)})


@dataclasses.dataclass
class Federation:
    job: JobSpec
    owners: dict[str, OwnerCredentials]
    model_owner: OwnerCredentials
    tee: TeeBackend
    policy: AttestationPolicy
    nodes: list[AggregatorNode]

    def node(self, *, initial: bool = True, **kwargs: object) -> AggregatorNode:
        network = {k: kwargs.pop(k) for k in ("host", "port", "max_workers", "limits") if k in kwargs}
        node = AggregatorNode(
            job=self.job,
            tee=self.tee,
            initial_model=model() if initial else None,
            **kwargs,  # type: ignore[arg-type]
        )
        node.serve_grpc(chunk_bytes=CHUNK, **network).start()  # type: ignore[arg-type]
        self.nodes.append(node)
        return node

    def connect(self, node: AggregatorNode | str, name: str, **kwargs: object) -> AttestedNode:
        address = node if isinstance(node, str) else node.address
        return connect_data_owner(
            address,
            name=name,
            job=kwargs.pop("job", self.job),
            policy=kwargs.pop("policy", self.policy),  # type: ignore[arg-type]
            credentials=self.owners[name],
            chunk_bytes=CHUNK,
        )


@pytest.fixture
def federation(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> Iterator[Federation]:
    yield from make_federation(sim_enclave)


@pytest.fixture
def federation_factory(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> Iterator[Callable[..., Federation]]:
    made: list[Federation] = []

    def factory(**job_changes: object) -> Federation:
        fed = next(make_federation(sim_enclave, **job_changes))
        made.append(fed)
        return fed

    yield factory
    for fed in made:
        for node in fed.nodes:
            node.stop(0)


def make_federation(sim_enclave: tuple[TeeBackend, AttestationPolicy], **job_changes: object) -> Iterator[Federation]:
    tee, policy = sim_enclave
    owners = {name: OwnerCredentials.generate(name) for name in OWNERS}
    model_owner = OwnerCredentials.generate("model-owner")
    initial = model()
    job = JobSpec(
        name="network-test",
        rounds=2,
        train=TrainConfig(local_steps=1),
        min_contributions=2,
        round_deadline_seconds=30.0,
        data_owners=tuple(DataOwnerSpec(name=n, certificate_pem=c.certificate_pem.decode()) for n, c in owners.items()),
        model_owner_certificate_pem=model_owner.certificate_pem.decode(),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    job = dataclasses.replace(job, **job_changes)  # type: ignore[arg-type]
    fed = Federation(job=job, owners=owners, model_owner=model_owner, tee=tee, policy=policy, nodes=[])
    yield fed
    for node in fed.nodes:
        node.stop(0)


def update(name: str, round_index: int, value: float, n: int = 1) -> UpdateMessage:
    return UpdateMessage.of(owner=name, round=round_index, num_examples=n, payload=encode_weights(model(value)))


def sign_sealed_round(
    node: AggregatorNode, owners: Mapping[str, AttestedNode], round_index: int, *, timeout: float = 10.0
) -> None:
    """The second phase for owners driven by hand: once `round_index` is sealed, each signs its receipt back."""
    deadline = time.monotonic() + timeout
    while not ((st := node.node_status()).phase is RoundPhase.SIGNING and st.round == round_index):
        assert time.monotonic() < deadline, f"round {round_index} was not sealed: {st}"
        time.sleep(0.01)
    acks = {}
    for name, attested in owners.items():
        pending = attested.client.pending_receipt()
        verify_receipt(pending, attested.node_public_key_pem)
        assert attested.signing_key is not None
        acks[name] = sign_acknowledgement(attested.signing_key, owner=name, receipt=pending)
    # at once, as owners in their own processes do: the node parks each signer until the release (up to a second),
    # so signing one after the other would wait that second out for every owner but the last
    with concurrent.futures.ThreadPoolExecutor(len(acks) or 1) as pool:
        for sent in [pool.submit(owners[name].client.acknowledge, ack) for name, ack in acks.items()]:
            sent.result()


def wait_open(node: AggregatorNode, round_index: int, attempt: int = 1, timeout: float = 15.0) -> None:
    """Until `node` has round `round_index` (attempt `attempt`) open; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        st = node.node_status()
        if st.phase is RoundPhase.OPEN and st.round == round_index and st.attempt == attempt:
            return
        assert time.monotonic() < deadline, f"round {round_index} (attempt {attempt}) did not open: {st}"
        time.sleep(0.02)


def stalled_upload(
    payload: bytes, *, round_index: int, stall: threading.Event, timeout: float
) -> Iterator[pb.UploadPart]:
    """An owner's upload that stops mid-stream: a header with a valid commitment and 500 bytes, then nothing more
    until `stall` is set (or `timeout` passes)."""
    salt = new_commitment_salt()
    commitment = commitment_of_payload(salt=salt, payload=payload)
    yield pb.UploadPart(
        metadata=pb.UploadMetadata(round=round_index, num_examples=1, commitment_salt=salt, commitment=commitment)
    )
    yield pb.UploadPart(data=payload[:500])
    stall.wait(timeout)

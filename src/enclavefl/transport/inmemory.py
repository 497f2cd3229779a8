"""The in-memory transport: a party's connection to a node in the same process, with the network's boundaries.

    client = InMemoryClient(node, caller="alice")     # a data owner's connection (caller "": the model owner)
    client.upload_for_status(message, wait_seconds=2.0)

It makes the calls the gRPC servicer makes (transport/grpc_servicer.py) on the same NodeService, so a simulation
runs the node's own code paths. Every mutable buffer is copied across the boundary, as the network would, so no
party shares an array with another. The caller's name stands for the authenticated session: a simulation enrols
its owners itself, so there is no join; the calls a role may not make are refused as the gRPC server refuses them.
A stopped node is unreachable (ProtocolError), as over a network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.errors import NotEnrolled, ProtocolError
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import NodeStatus
from enclavefl.transport.service import NodeService

WATCH_POLL_SECONDS = 0.5


class InMemoryClient:
    """A NodeConnection (transport/connection.py) to a node object in this process."""

    def __init__(self, node: NodeService, *, caller: str = "") -> None:
        self._node = node
        self._caller = caller  # a data owner's name; "" is the model owner
        self._closed = False
        self.pinned_spki_sha256 = node.channel_spki_sha256  # the key the "channel" is bound to: the node's own
        self.bytes_sent = 0
        self.bytes_received = 0

    def close(self) -> None:
        self._closed = True

    def attest(self, nonce: bytes) -> AttestationBundle:
        return self._reach().attest(bytes(nonce))

    def node_status(self, *, seen: NodeStatus | None = None, wait_seconds: float = 0.0) -> NodeStatus:
        if seen is not None:  # what goes back over the wire: the node compares round, phase, attempt and state
            seen = dataclasses.replace(seen, pending=None, global_model=b"")
        return self._reach().node_status_after(
            seen if wait_seconds > 0 else None, timeout=wait_seconds, caller=self._caller
        )

    def global_model_bytes(self, round_index: int) -> ModelBytes:
        data = bytes(self._reach(data_owner=True).global_model_bytes(round_index))
        self.bytes_received += len(data)
        return data

    def upload_update(self, message: UpdateMessage) -> bytes:
        node = self._reach(data_owner=True)
        payload = bytes(bytearray(message.payload))  # the node never sees the owner's own buffer
        self.bytes_sent += len(payload)
        update = dataclasses.replace(message, payload=payload).incoming(owner=self._caller)
        return node.submit_update(update)

    def upload_for_status(self, message: UpdateMessage, *, wait_seconds: float) -> NodeStatus | None:
        found = self._reach(data_owner=True).node_status()  # the round as this upload found it
        self.upload_update(message)
        return self._reach().node_status_after(found, timeout=wait_seconds, caller=self._caller)

    def receipts(self) -> tuple[SignedReceipt, ...]:
        return tuple(_copied(r) for r in self._reach().receipts(caller=self._caller))

    def pending_receipt(self) -> SignedReceipt:
        return _copied(self._reach(data_owner=True).pending_receipt())

    def acknowledge(self, ack: Acknowledgement) -> None:
        self.acknowledge_for_status(ack)

    def acknowledge_for_status(self, ack: Acknowledgement) -> NodeStatus | None:
        node = self._reach(data_owner=True)
        return node.acknowledge(dataclasses.replace(ack, owner=self._caller, signature=bytes(ack.signature)))

    def masking_step(self, *, round_index: int, step: str, body: bytes = b"") -> tuple[bool, bytes]:
        node = self._reach(data_owner=True)
        return node.masking_step(owner=self._caller, round_index=round_index, step=step, body=bytes(body))

    def submit_initial_model(self, payload: bytes) -> str:
        if self._caller:
            raise NotEnrolled("this call is for the model-owner")
        return self._reach().submit_initial_model(bytes(payload))

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]:
        """Round summaries as rounds close, until the job ends."""
        after = after_round
        while True:
            summaries, ended = self._reach().summaries_after(after, timeout=WATCH_POLL_SECONDS)
            for summary in summaries:
                after = summary.round
                yield summary
            if ended:
                return

    def final_model_bytes(self) -> ModelBytes:
        data = bytes(self._reach().final_model_bytes())
        self.bytes_received += len(data)
        return data

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        data = bytes(self._reach().released_model_bytes(round_index))
        self.bytes_received += len(data)
        return data

    def _reach(self, *, data_owner: bool = False) -> NodeService:
        if self._closed:
            raise ProtocolError("this connection to the node is closed")
        if self._node.stopped:
            raise ProtocolError("the node is unreachable: it stopped")
        if data_owner and not self._caller:
            raise NotEnrolled("this call is for the data-owner")
        return self._node


def _copied(signed: SignedReceipt) -> SignedReceipt:
    return SignedReceipt.parse(bytes(signed.body), bytes(signed.signature))

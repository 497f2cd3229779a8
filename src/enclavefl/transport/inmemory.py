"""In-memory transport: the PySyft tutorial's "virtual workers", with the network's message boundaries.

Every payload is copied across the boundary, as the network would, so no party shares an array with another.
"""

from __future__ import annotations

from dataclasses import replace

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundStatus, UpdateMessage
from enclavefl.core.receipts import SignedReceipt
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import NodeApi


class InMemoryClient:
    """A NodeApi that calls a node object in the same process."""

    def __init__(self, node: NodeApi) -> None:
        self._node = node
        self.bytes_sent = 0
        self.bytes_received = 0

    def attest(self, nonce: bytes) -> AttestationBundle:
        return self._node.attest(bytes(nonce))

    def status(self) -> RoundStatus:
        return self._node.status()

    def global_model_bytes(self, round_index: int) -> ModelBytes:
        data = bytes(bytearray(self._node.global_model_bytes(round_index)))
        self.bytes_received += len(data)
        return data

    def submit_update(self, message: UpdateMessage) -> None:
        copied = replace(message, payload=bytes(bytearray(message.payload)), metrics=dict(message.metrics))
        self.bytes_sent += len(copied.payload)
        self._node.submit_update(copied)

    def pending_receipt(self) -> SignedReceipt:
        signed = self._node.pending_receipt()
        return SignedReceipt.parse(bytes(signed.body), bytes(signed.signature))

    def acknowledge(self, ack: Acknowledgement) -> None:
        self._node.acknowledge(replace(ack, signature=bytes(ack.signature)))

"""What an owner holds: a connection to one node, over gRPC (NodeClient) or in this process (InMemoryClient).

    connection.node_status(seen=last, wait_seconds=2.0)      # a long poll: answered when the round moves on
    connection.upload_for_status(message, wait_seconds=2.0)   # the upload, answered at the seal
    connection.acknowledge_for_status(ack)                    # the signature, answered at the release

Both carry the same calls to the node's one service (transport/service.py's NodeService); owner code never knows
which it holds. Neither trusts the node: the owner attests it over the connection before sending anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import NodeStatus


class NodeConnection(Protocol):
    """The calls a data owner or model owner makes on one node."""

    @property
    def pinned_spki_sha256(self) -> bytes:
        """SHA-256 of the key this connection is bound to (the pinned TLS key): the attested key must be it."""
        ...

    def attest(self, nonce: bytes) -> AttestationBundle: ...

    def node_status(self, *, seen: NodeStatus | None = None, wait_seconds: float = 0.0) -> NodeStatus: ...

    def global_model_bytes(self, round_index: int) -> ModelBytes: ...

    def upload_update(self, message: UpdateMessage) -> bytes:
        """Send one update; the payload SHA-256 the node folded."""
        ...

    def upload_for_status(self, message: UpdateMessage, *, wait_seconds: float) -> NodeStatus | None:
        """Send one update; the node's status once the round left the phase the upload found (or later)."""
        ...

    def receipts(self) -> tuple[SignedReceipt, ...]: ...

    def pending_receipt(self) -> SignedReceipt: ...

    def acknowledge(self, ack: Acknowledgement) -> None: ...

    def acknowledge_for_status(self, ack: Acknowledgement) -> NodeStatus | None: ...

    def masking_step(self, *, round_index: int, step: str, body: bytes = b"") -> tuple[bool, bytes]: ...

    def submit_initial_model(self, payload: bytes) -> str: ...

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]: ...

    def final_model_bytes(self) -> ModelBytes: ...

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        """The model released after `round_index` while it is the last released (the model owner's evaluation)."""
        ...

    def close(self) -> None: ...

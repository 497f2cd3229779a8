"""What a data owner can ask of a node, whatever carries the call (in memory or gRPC over attested TLS)."""

from __future__ import annotations

from typing import Protocol

from enclavefl.core.messages import RoundStatus, UpdateMessage
from enclavefl.tee.evidence import AttestationBundle


class NodeApi(Protocol):
    def attest(self, nonce: bytes) -> AttestationBundle:
        """Evidence bound to the node's key, its job digest and this nonce."""
        ...

    def status(self) -> RoundStatus: ...

    def global_model_bytes(self, round_index: int) -> bytes:
        """The safetensors bytes of the model the round starts from."""
        ...

    def submit_update(self, message: UpdateMessage) -> None:
        """Send one update; raises an UpdateRejected leaf when the node refuses it."""
        ...

"""The node's one service interface: what a transport asks of the node it serves. A type, never loaded inside.

    def serve(node: NodeService) -> None: ...     # transport/grpc_servicer.py, transport/inmemory.py

`enclave/node.py`'s AggregatorNode implements it; both transports serve it unchanged, so a simulation runs the
node a deployment runs. The transport authenticates the caller and passes its name (`caller`, the update
header's `owner`); the node never takes an identity from a message body. The enclave's modules name it only
under `if TYPE_CHECKING:` (type checking, not the enclave's import closure: `enclavefl enclave tcb`); the values
a call answers with (NodeStatus, JobState) are transport/api.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, Protocol

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.model_source import ModelSource
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import IncomingUpdate
from enclavefl.errors import UpdateRejected
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import NodeStatus


class NodeService(Protocol):
    """What a transport asks of the node it serves (implemented by enclave/node.py's AggregatorNode).

    Every method raises a precise EnclaveFLError leaf on refusal; a transport hands it to the caller as it is (the
    gRPC server sends its class name and message).
    """

    @property
    def job(self) -> JobSpec: ...

    @property
    def channel_spki_sha256(self) -> bytes:
        """SHA-256 of the key a transport's channel is bound to (the TLS key over gRPC): the attested key."""
        ...

    @property
    def stopped(self) -> bool:
        """True once the node stopped serving (an in-memory caller then finds it gone, as over a network)."""
        ...

    def attest(self, nonce: bytes) -> AttestationBundle:
        """Evidence bound to the node's key, its job digest and this nonce."""
        ...

    def node_status(self, *, data_owner: bool = False, caller: str = "") -> NodeStatus:
        """The status now; a `data_owner`'s also carries what it acts on (the receipt to sign, a small model, and
        `caller`'s own cohort claim). `caller` is the authenticated data owner asking ("" for the model owner).

        The node answers at once, always: a long poll (the status once its round view moved) waits in the
        transport, woken by `on_status_change` (transport/waiting.py over gRPC, transport/inmemory.py in process)."""
        ...

    def global_model_bytes(self, round_index: int) -> ModelSource:
        """The safetensors bytes of the model round `round_index` starts from."""
        ...

    def submit_update(self, update: IncomingUpdate) -> bytes:
        """Validate and fold one update (its header's owner authenticated by the transport); its payload SHA-256."""
        ...

    def count_rejection(self, sender: str, exc: UpdateRejected) -> NoReturn:
        """Count a refusal the transport made itself (e.g. an unauthenticated upload), then raise `exc`."""
        ...

    def receipts(self, *, caller: str = "") -> tuple[SignedReceipt, ...]:
        """The released chain; `caller` is the authenticated data owner asking ("" for the model owner)."""
        ...

    def pending_receipt(self) -> SignedReceipt:
        """The sealed round's receipt, for data owners to sign (RoundStateError when none waits)."""
        ...

    def acknowledge(self, ack: Acknowledgement) -> NodeStatus:
        """Count a data owner's signature over the pending receipt (`ack.owner` is the authenticated peer); returns
        the status now (the transport may wait for the release and the next opening, then ask again below)."""
        ...

    def acknowledge_settled(self, ack: Acknowledgement) -> NodeStatus:
        """The status a signer of `ack` is answered with now (after the transport's wait)."""
        ...

    def on_status_change(self, listener: Callable[[], object]) -> None:
        """Call `listener` (from any thread; it must not block) whenever the status may have changed: an
        asynchronous transport wakes its waiting calls with it instead of holding a thread in each."""
        ...

    def masking_step(self, *, owner: str, round_index: int, step: str, body: bytes) -> tuple[bool, bytes]:
        """Masked mode: one key/share/unmask step of an authenticated data owner; (ready, reply body)."""
        ...

    def submit_initial_model(self, payload: ModelBytes) -> str:
        """Accept the model owner's initial model (hash must match the job); returns its SHA-256 hex."""
        ...

    def summaries_after(self, round_index: int) -> tuple[tuple[RoundSummary, ...], bool]:
        """Round summaries after `round_index` (now), and whether the job has ended."""
        ...

    def final_model_bytes(self) -> ModelSource:
        """The final global model's safetensors bytes once the job has finished."""
        ...

    def released_model_bytes(self, round_index: int) -> ModelSource:
        """The model released after `round_index`, while it is the last released one (WrongRound otherwise)."""
        ...

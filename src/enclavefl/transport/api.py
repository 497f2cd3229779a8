"""The node's one service interface, and the status it answers with.

    server = NodeServer(node, private_key=...)       # transport/grpc_server.py: each RPC is one NodeService call
    client = InMemoryClient(node, caller="alice")    # transport/inmemory.py: the same calls, in this process

`enclave/node.py`'s AggregatorNode implements NodeService; both transports serve it unchanged, so a simulation
runs the node a deployment runs. The transport authenticates the caller and passes its name (`caller`, the
update header's `owner`); the node never takes an identity from a message body.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.model_source import ModelSource
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import IncomingUpdate
from enclavefl.errors import UpdateRejected
from enclavefl.tee.evidence import AttestationBundle

# A model this small travels inside the status that opens its round (a seed job's round is mostly round trips).
INLINE_MODEL_BYTES = 64 * 1024


class JobState(enum.StrEnum):
    AWAITING_MODEL = "awaiting-model"  # the node waits for the model owner's initial model
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # a round failed under on_round_failure = "stop" (or ran out of attempts)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """Where a networked node's job and round stand (RoundStatus plus the job-level state)."""

    round: int
    phase: RoundPhase
    contributions: int
    rounds_total: int
    global_model_sha256: str
    attempt: int  # 1 for a round's first opening, 2 after a retry, ...; 0 when no round is open
    rounds_completed: int
    job_state: JobState
    job_message: str = ""
    # The sealed round's receipt while phase is SIGNING (data owners only; None for the model owner), read together
    # with the phase so a signer needs no second call.
    pending: SignedReceipt | None = None
    released_head_sha256: bytes = b""  # SHA-256 of the last released receipt (b"" before the first release)
    # The open round's global model (safetensors) when it is at most INLINE_MODEL_BYTES (data owners only; else
    # b"": the owner downloads it).
    global_model: bytes = b""
    # Cohorts (a job with clients_per_round), to a data owner while its round is open or signing: whether the
    # enclave left it out of this round's cohort (then it waits without uploading), and its own secret token for
    # the round, whose hash the round's receipt lists exactly when it is a member (core/cohort.py).
    outside_cohort: bool = False
    cohort_token: bytes = b""

    def round_view(self) -> tuple[object, ...]:
        """What a waiting data owner acts on: the round, its phase and attempt, the rounds released, the job's
        state. Contribution counts and messages change too, but wake nobody: an owner that uploaded waits for the
        seal."""
        return (self.round, self.phase, self.attempt, self.rounds_completed, self.job_state)


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
        `caller`'s own cohort claim)."""
        ...

    def node_status_after(self, seen: NodeStatus | None, *, timeout: float, caller: str = "") -> NodeStatus:
        """The status as soon as its round, phase, attempt, released rounds or job state differ from `seen` (at
        once for None), else after `timeout` seconds: a long poll, so a waiting data owner hears that a round
        opened or sealed when it happens. `caller` is the authenticated data owner asking ("" for the model
        owner)."""
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

    def acknowledge(self, ack: Acknowledgement, *, wait_seconds: float = 1.0) -> NodeStatus:
        """Count a data owner's signature over the pending receipt (`ack.owner` is the authenticated peer); returns
        the status once the round is released and the next opened, or after `wait_seconds`."""
        ...

    def acknowledge_settled(self, ack: Acknowledgement) -> NodeStatus:
        """The status a signer of `ack` is answered with now (an asynchronous transport waits between calls)."""
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

    def summaries_after(self, round_index: int, *, timeout: float) -> tuple[tuple[RoundSummary, ...], bool]:
        """Round summaries after `round_index` (waiting up to `timeout` for one), and whether the job has ended."""
        ...

    def final_model_bytes(self) -> ModelSource:
        """The final global model's safetensors bytes once the job has finished."""
        ...

    def released_model_bytes(self, round_index: int) -> ModelSource:
        """The model released after `round_index`, while it is the last released one (WrongRound otherwise)."""
        ...

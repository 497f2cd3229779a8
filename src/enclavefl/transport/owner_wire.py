"""The owners' side of the wire: the node's answers parsed into enclavefl values, the upload header framed.

    refused = error_from_rpc(exc)                    # the EnclaveFLError the node sent, or None
    bundle = bundle_from_proto(reply)                # an Attest answer (QuoteFormatError on an unknown TEE)
    chain = receipts_from_proto(reply)               # ReceiptError on a malformed receipt
    status = status_from_proto(reply.status)         # ProtocolError on a malformed status

Only data owners and the model owner (transport/grpc_client.py) run these; the node's half of the format is
transport/wire.py, and keeping the two apart keeps the client's parsers out of the enclave's import closure.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from enclavefl import errors
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import UpdateHeader
from enclavefl.errors import EnclaveFLError, ProtocolError, ReceiptError
from enclavefl.tee.evidence import AttestationBundle, Evidence, TeeKind
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.wire import ERROR_METADATA_KEY, UPLOAD_DATA_TAG, chunk_views, framed

FRAMED_AHEAD_PARTS = 2  # upload parts framed before gRPC asks for them: 1 MiB of the owner's memory at 512 KiB
_FRAMING_POLL_SECONDS = 0.1  # how soon the framing thread notices that the upload was abandoned


def error_from_rpc(exc: grpc.RpcError) -> EnclaveFLError | None:
    """The enclavefl error a node sent (same class, same message), or None if the failure is not one."""
    call = exc if isinstance(exc, grpc.Call) else None
    if call is None:
        return None
    name = next((v for k, v in (call.trailing_metadata() or ()) if k == ERROR_METADATA_KEY), None)
    if name is None:
        return None
    cls = getattr(errors, str(name), None)
    details = call.details() or ""
    if isinstance(cls, type) and issubclass(cls, EnclaveFLError):
        return cls(details)
    return ProtocolError(f"the node refused with an unknown error {name!r}: {details}")


def bundle_from_proto(msg: pb.AttestationBundle) -> AttestationBundle:
    try:
        tee = TeeKind(msg.tee)
    except ValueError:
        raise errors.QuoteFormatError(f"the node claims an unknown TEE kind {msg.tee!r}") from None
    return AttestationBundle(
        evidence=Evidence(tee=tee, quote=bytes(msg.quote), collateral_json=msg.collateral_json),
        node_spki_sha256=bytes(msg.node_spki_sha256),
        job_digest=bytes(msg.job_digest),
        node_public_key_pem=bytes(msg.node_public_key_pem),
    )


def summary_from_proto(msg: pb.RoundSummary) -> RoundSummary:
    return RoundSummary(
        round=msg.round,
        contributions=msg.contributions,
        global_model_sha256=msg.global_model_sha256,
        metrics=dict(msg.metrics),
        rejected=dict(msg.rejected),
        evaluation=dict(msg.evaluation),
    )


def status_from_proto(msg: pb.NodeStatus) -> NodeStatus:
    try:
        phase, state = RoundPhase(msg.phase), JobState(msg.job_state)
    except ValueError as exc:
        raise ProtocolError(f"the node sent a malformed status: {exc}") from None
    head = bytes(msg.released_head_sha256)
    if len(head) not in (0, 32):
        raise ProtocolError(f"the node sent a malformed status: a released head hash of {len(head)} bytes")
    return NodeStatus(
        round=msg.round,
        phase=phase,
        contributions=msg.contributions,
        rounds_total=msg.rounds_total,
        global_model_sha256=msg.global_model_sha256,
        attempt=msg.attempt,
        rounds_completed=msg.rounds_completed,
        job_state=state,
        job_message=msg.job_message,
        released_head_sha256=head,
        global_model=bytes(msg.global_model),
        pending=receipt_from_proto(msg.pending) if msg.HasField("pending") else None,
        outside_cohort=msg.outside_cohort,
        cohort_token=bytes(msg.cohort_token),
    )


def receipts_from_proto(msg: pb.ReceiptChain) -> tuple[SignedReceipt, ...]:
    return tuple(receipt_from_proto(r) for r in msg.receipts)


def receipt_from_proto(msg: pb.SignedReceipt) -> SignedReceipt:
    try:
        return SignedReceipt.parse(bytes(msg.body), bytes(msg.signature))
    except ReceiptError as exc:
        raise ReceiptError(f"the node sent a malformed receipt: {exc}") from None


def metadata_from_header(header: UpdateHeader, *, total_bytes: int, wait_ms: int) -> pb.UploadMetadata:
    """An upload's metadata as its owner sends it (no owner field: the node takes the session's)."""
    return pb.UploadMetadata(
        round=header.round,
        num_examples=header.num_examples,
        metrics=dict(header.metrics),
        total_bytes=total_bytes,
        commitment_salt=header.commitment_salt,
        commitment=header.commitment,
        wait_ms=wait_ms,
        evaluation=dict(header.evaluation),
        evaluation_examples=header.evaluation_examples,
    )


def serialize_upload_part(part: pb.UploadPart | bytes | memoryview) -> bytes:
    """An UploadPart's wire bytes; a memoryview is framed as a data-only part with a single copy, bytes were."""
    if isinstance(part, bytes):
        return part  # already framed (framed_ahead)
    if isinstance(part, pb.UploadPart):
        return bytes(part.SerializeToString())  # bytes() of bytes is the same object: no copy
    return framed(UPLOAD_DATA_TAG, part)


def framed_ahead(data: bytes | memoryview, chunk_bytes: int) -> Iterator[bytes]:
    """`data`'s upload parts, each framed (its one copy) on a helper thread FRAMED_AHEAD_PARTS ahead of the caller.

    grpcio's client sends a stream one message at a time: it asks for the next message only once the previous one
    was written, and serializes it on the same thread. Framing there puts a 512 KiB copy (and its page faults) in
    every gap between two messages, on the sending thread that the whole upload waits for; framed ahead, the copy
    overlaps the previous message's send (docs/performance.md, "Upload ingest": the owner's CPU per 400 MB fell by
    a quarter). Abandoning the iterator (a failed call) stops the thread within _FRAMING_POLL_SECONDS.
    """
    ready: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=FRAMED_AHEAD_PARTS)
    abandoned = threading.Event()

    def offer(item: bytes | BaseException | None) -> bool:
        while not abandoned.is_set():
            try:
                ready.put(item, timeout=_FRAMING_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def frame_all() -> None:
        try:
            for piece in chunk_views(data, chunk_bytes):
                if not offer(framed(UPLOAD_DATA_TAG, piece)):
                    return
        except BaseException as exc:  # handed to the sending thread, which raises it
            offer(exc)
            return
        offer(None)

    threading.Thread(target=frame_all, name="enclavefl-upload-framing", daemon=True).start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        abandoned.set()


# --- chunks ---------------------------------------------------------------------------------
def chunked(data: bytes | memoryview, chunk_bytes: int) -> Iterator[bytes]:
    """`data` in slices of at most `chunk_bytes` (each copied once into its message)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])

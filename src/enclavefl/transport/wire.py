"""Protobuf <-> enclavefl values, and refusals <-> gRPC status (error class name in trailing metadata).

@wire.refusals                                  # a handler's EnclaveFLError ends its call with that status
async def Status(self, request, context): ...
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc

from enclavefl import errors
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import UpdateHeader
from enclavefl.errors import EnclaveFLError, MalformedUpdate
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.proto import enclavefl_pb2 as pb

T = TypeVar("T")
ERROR_METADATA_KEY = "enclavefl-error"
# per streamed message; the node holds ~3 of the upload it reads: 512 KiB keeps the big job 6-9 MiB under its
# memory budget where 1 MiB left 0-3 MiB, at the same ingest speed (docs/performance.md, "Node memory")
DEFAULT_CHUNK_BYTES = 512 << 10
MESSAGE_MARGIN_BYTES = 64 * 1024  # protobuf framing and metadata on top of a chunk
# Per-stream receive window while the application is not reading. gRPC grows a stream's window to the size of a
# message the application is waiting for, so an upload being read still moves whole chunks; an upload parked
# waiting for a staging slot buffers at most this much. The BDP probe would grow every window to megabytes.
STREAM_WINDOW_BYTES = 256 << 10
UPLOAD_DATA_TAG = 0x12  # UploadPart field 2 (data), wire type 2 (length-delimited)
_CHUNK_DATA_TAG = 0x0A  # Chunk field 1 (data), wire type 2

_STATUS_BY_ERROR: tuple[tuple[type[EnclaveFLError], grpc.StatusCode], ...] = (
    (errors.NotEnrolled, grpc.StatusCode.UNAUTHENTICATED),
    (errors.WrongRound, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DuplicateUpdate, grpc.StatusCode.ALREADY_EXISTS),
    (errors.UpdateTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.NodeBusy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.UpdateRejected, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.AggregationError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.CodecError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.AttestationError, grpc.StatusCode.UNAVAILABLE),
)


def message_limit(chunk_bytes: int) -> int:
    """The gRPC message-size limit for a stream of `chunk_bytes` chunks (both directions, both sides)."""
    return chunk_bytes + MESSAGE_MARGIN_BYTES


def channel_options(chunk_bytes: int) -> list[tuple[str, int]]:
    limit = message_limit(chunk_bytes)
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
    ]


# --- errors ---------------------------------------------------------------------------------
async def abort_async(context: Any, exc: EnclaveFLError) -> NoReturn:
    """End the call (a grpc.aio ServicerContext) with a status for `exc`; its class name goes in the trailing
    metadata."""
    code = next((c for cls, c in _STATUS_BY_ERROR if isinstance(exc, cls)), grpc.StatusCode.INTERNAL)
    await context.abort(code, str(exc), trailing_metadata=((ERROR_METADATA_KEY, type(exc).__name__),))
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A received message that does not parse: the handler refuses it as MalformedUpdate (grpc.aio would answer
    an exception raised while parsing with UNKNOWN, as if the node had failed)."""

    why: str

    def refuse(self) -> NoReturn:
        raise MalformedUpdate(f"the request does not parse: {self.why}")


def lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`parse`, returning an Undecodable instead of raising."""

    def parsed(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # protobuf's DecodeError and anything a hand parser raises
            return Undecodable(f"{type(exc).__name__}: {exc}")

    return parsed


def decoded(message: T) -> T:
    """`message`, or MalformedUpdate if it is an Undecodable."""
    if isinstance(message, Undecodable):
        message.refuse()
    return message


def refusals(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A unary handler whose EnclaveFLError ends the call with that error's status (class name in the trailer)."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: Any) -> Any:
        try:
            return await handler(self, decoded(request), context)
        except EnclaveFLError as exc:
            await abort_async(context, exc)

    return wrapped


def stream_refusals(handler: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """The same for a server-streaming handler (an async generator)."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            async for item in handler(self, decoded(request), context):
                yield item
        except EnclaveFLError as exc:
            await abort_async(context, exc)

    return wrapped


# --- attestation ----------------------------------------------------------------------------
def bundle_to_proto(bundle: AttestationBundle) -> pb.AttestationBundle:
    return pb.AttestationBundle(
        tee=bundle.evidence.tee.value,
        quote=bundle.evidence.quote,
        collateral_json=bundle.evidence.collateral_json,
        node_spki_sha256=bundle.node_spki_sha256,
        job_digest=bundle.job_digest,
        node_public_key_pem=bundle.node_public_key_pem,
    )


# --- status and summaries -------------------------------------------------------------------
def status_to_proto(status: NodeStatus) -> pb.NodeStatus:
    return pb.NodeStatus(
        round=status.round,
        phase=status.phase.value,
        contributions=status.contributions,
        rounds_total=status.rounds_total,
        global_model_sha256=status.global_model_sha256,
        attempt=status.attempt,
        job_state=status.job_state.value,
        job_message=status.job_message,
        rounds_completed=status.rounds_completed,
        pending=receipt_to_proto(status.pending) if status.pending is not None else None,
        released_head_sha256=status.released_head_sha256,
        global_model=status.global_model,
        outside_cohort=status.outside_cohort,
        cohort_token=status.cohort_token,
    )


def status_seen(request: pb.StatusRequest) -> NodeStatus | None:
    """The round view a long-polling caller last saw, as a NodeStatus whose `round_view()` is all the node reads;
    None to answer at once (no wait asked, or a `seen` whose phase or job state is no such thing: such a caller gets
    the current status rather than an error). The caller's other fields are not read: nothing of it is trusted."""
    seen = request.seen
    if request.wait_ms == 0 or not request.HasField("seen"):
        return None
    try:
        phase, state = RoundPhase(seen.phase), JobState(seen.job_state)
    except ValueError:
        return None
    return NodeStatus(
        round=seen.round,
        phase=phase,
        contributions=0,
        rounds_total=0,
        global_model_sha256="",
        attempt=seen.attempt,
        rounds_completed=seen.rounds_completed,
        job_state=state,
    )


def summary_to_proto(summary: RoundSummary) -> pb.RoundSummary:
    return pb.RoundSummary(
        round=summary.round,
        contributions=summary.contributions,
        global_model_sha256=summary.global_model_sha256,
        metrics=dict(summary.metrics),
        rejected=dict(summary.rejected),
        evaluation=dict(summary.evaluation),
    )


# --- receipts -------------------------------------------------------------------------------
def receipts_to_proto(receipts: tuple[SignedReceipt, ...]) -> pb.ReceiptChain:
    return pb.ReceiptChain(receipts=[receipt_to_proto(r) for r in receipts])


def receipt_to_proto(receipt: SignedReceipt) -> pb.SignedReceipt:
    return pb.SignedReceipt(body=receipt.body, signature=receipt.signature)


# --- updates --------------------------------------------------------------------------------
def header_from_metadata(meta: pb.UploadMetadata, *, owner: str) -> UpdateHeader:
    """An upload's header as the node reads it: its metadata, sent by `owner` (the authenticated session)."""
    return UpdateHeader(
        owner=owner,
        round=meta.round,
        num_examples=meta.num_examples,
        metrics=dict(meta.metrics),
        commitment_salt=bytes(meta.commitment_salt),
        commitment=bytes(meta.commitment),
        evaluation=dict(meta.evaluation),
        evaluation_examples=meta.evaluation_examples,
    )


def chunk_views(data: bytes | bytearray | memoryview, chunk_bytes: int) -> Iterator[memoryview]:
    """`data` in zero-copy slices of at most `chunk_bytes`."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), chunk_bytes):
        yield view[start : start + chunk_bytes]


# --- upload parts without protobuf copies ---------------------------------------------------
# Same wire format as pb.UploadPart: the hot path (a data-only part) is framed and sliced by hand, because
# protobuf's `bytes` fields copy the payload on construction, serialization, parsing and every access.
@dataclass(frozen=True, slots=True, kw_only=True)
class UploadFrame:
    """One received UploadPart: its metadata (first part only) and its data as a view into the message."""

    metadata: pb.UploadMetadata | None
    data: memoryview


def serialize_chunk(piece: pb.Chunk | memoryview) -> bytes:
    """A Chunk's wire bytes; a memoryview (a slice of the model being served) is framed with its only copy."""
    if isinstance(piece, pb.Chunk):
        return bytes(piece.SerializeToString())
    return framed(_CHUNK_DATA_TAG, piece)


def framed(tag: int, data: memoryview) -> bytes:
    """A message of one length-delimited field `tag` (field number and wire type) holding `data`: its only copy."""
    return b"".join((bytes((tag,)) + _varint(data.nbytes), data))


def parse_chunk(serialized: bytes) -> memoryview:
    """A Chunk's data as a view of the received message (protobuf would copy it twice)."""
    view = memoryview(serialized)
    if len(view) > 1 and view[0] == _CHUNK_DATA_TAG:
        framed = _read_varint(view, 1)
        if framed is not None and framed[0] + framed[1] == len(view):
            return view[framed[1] :]
    return memoryview(pb.Chunk.FromString(serialized).data)


def parse_upload_part(serialized: bytes) -> UploadFrame:
    """Parse an UploadPart; a data-only part becomes a view of `serialized`, anything else goes to protobuf."""
    view = memoryview(serialized)
    if len(view) > 1 and view[0] == UPLOAD_DATA_TAG:
        framed = _read_varint(view, 1)
        if framed is not None and framed[0] + framed[1] == len(view):
            return UploadFrame(metadata=None, data=view[framed[1] :])
    part = pb.UploadPart.FromString(serialized)
    return UploadFrame(metadata=part.metadata if part.HasField("metadata") else None, data=memoryview(part.data))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(view: memoryview, offset: int) -> tuple[int, int] | None:
    """(value, offset after it), or None if no complete varint of at most 10 bytes starts at `offset`."""
    value = shift = 0
    for position in range(offset, min(offset + 10, len(view))):
        byte = view[position]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position + 1
        shift += 7
    return None

"""The node's RPC handlers: each authenticates its caller, moves chunks, and makes one NodeService call.

    servicer = NodeServicer(node, authority, chunk_bytes=512 << 10, gate=CallGate(limits))
    servicer.UploadUpdate(parts, context)    # metadata + chunks -> one IncomingUpdate -> node.submit_update

The handlers hold no round logic. Refusals travel as gRPC statuses carrying the error class name; every refusal
a handler makes itself is counted through the node (NodeService.count_rejection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.update import IncomingUpdate
from enclavefl.errors import EnclaveFLError, MalformedUpdate, NotEnrolled, UpdateTooLarge
from enclavefl.transport import wire
from enclavefl.transport.api import INLINE_MODEL_BYTES, NodeService
from enclavefl.transport.auth import SESSION_METADATA_KEY, JoinAuthority, Peer, Role
from enclavefl.transport.budget import ByteBudget
from enclavefl.transport.limits import CallGate, NodeLimits, Permit
from enclavefl.transport.proto import enclavefl_pb2 as pb

_ROLES = {pb.ROLE_DATA_OWNER: Role.DATA_OWNER, pb.ROLE_MODEL_OWNER: Role.MODEL_OWNER}
_ANY_ROLE = (Role.DATA_OWNER, Role.MODEL_OWNER)
WATCH_POLL_SECONDS = 0.5
# Downloads in flight, all streams together: serialized chunks and gRPC's copies (docs/performance.md).
DOWNLOAD_BUDGET_BYTES = 4 << 20
DOWNLOAD_CHUNK_BYTES = 1 << 20
DOWNLOAD_BUDGET_WAIT_SECONDS = 2.0
DOWNLOADS = ("DownloadGlobalModel", "DownloadFinalModel")
PARSERS = {  # no payload copies
    "UploadUpdate": wire.parse_upload_part,
    "UploadSmallUpdate": wire.parse_upload_part,
    "SubmitInitialModel": wire.parse_chunk,
}


class NodeServicer:
    """Maps each RPC onto one NodeService call; refusals travel as statuses carrying the error class name."""

    def __init__(
        self, node: NodeService, authority: JoinAuthority, *, chunk_bytes: int, gate: CallGate | None = None
    ) -> None:
        self._node = node
        self._authority = authority
        self._chunk_bytes = chunk_bytes
        self.gate = gate or CallGate(NodeLimits())
        self._download_chunk_bytes = min(chunk_bytes, DOWNLOAD_CHUNK_BYTES)
        self._download_budget = ByteBudget(DOWNLOAD_BUDGET_BYTES)
        self._uploads_lock = threading.Lock()
        self._uploads: set[grpc.ServicerContext] = set()
        self.uploads_started = 0  # uploads that got past authentication (tests assert "nothing sent")

    # --- open calls --------------------------------------------------------------------------
    def Attest(self, request: pb.AttestRequest, context: grpc.ServicerContext) -> pb.AttestationBundle:
        try:
            self.gate.unauthenticated(context.peer())
            permit = self.gate.attesting()  # refused at once when full: a queued call would hold a thread
            try:
                return wire.bundle_to_proto(self._node.attest(bytes(request.nonce)))
            finally:
                permit.release()
        except (EnclaveFLError, ValueError) as exc:
            wire.abort_with(context, exc if isinstance(exc, EnclaveFLError) else MalformedUpdate(str(exc)))

    def Challenge(self, request: pb.ChallengeRequest, context: grpc.ServicerContext) -> pb.ChallengeResponse:
        try:
            self.gate.unauthenticated(context.peer())
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        return pb.ChallengeResponse(challenge=self._authority.challenge())

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinResponse:
        try:
            role = _ROLES.get(request.role)
            if role is None:
                raise NotEnrolled("join: unknown role")
            token = self._authority.join(
                role=role, name=request.name, challenge=bytes(request.challenge), signature=bytes(request.signature)
            )
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        return pb.JoinResponse(session=token)

    # --- authenticated calls -----------------------------------------------------------------
    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.NodeStatus:
        try:
            peer = self._peer(context, _ANY_ROLE)
            seen = wire.status_seen(request)  # None: answer at once
            caller = peer.name if peer.role is Role.DATA_OWNER else ""
            status = self._node.node_status_after(seen, timeout=request.wait_ms / 1000, caller=caller)
            return wire.status_to_proto(status)
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)

    def DownloadGlobalModel(self, request: pb.DownloadRequest, context: grpc.ServicerContext) -> Iterator[memoryview]:
        try:
            peer = self._peer(context, _ANY_ROLE)
            self._stream_permit(context, peer)
            # a data owner: the model a round starts from; the model owner: the model released after a round (for
            # its own evaluation of each released model, a value every data owner sees too)
            data = (
                self._node.released_model_bytes(request.round)
                if peer.role is Role.MODEL_OWNER
                else self._node.global_model_bytes(request.round)
            )
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        yield from self._serve(data)

    def UploadUpdate(self, request_iterator: Iterator[wire.UploadFrame], context: grpc.ServicerContext) -> pb.UploadAck:
        try:
            try:
                peer = self._peer(context, (Role.DATA_OWNER,), counted=False)
            except NotEnrolled as exc:
                self._node.count_rejection("an unauthenticated caller", exc)
            try:
                permit = self._stream_permit(context, peer)
            except EnclaveFLError as exc:  # counted by the gate, not as a refused update: nothing was read
                wire.abort_with(context, exc)
            first = next(request_iterator, None)
            if first is None or first.metadata is None:
                self._node.count_rejection(peer.name, MalformedUpdate("upload: the first part must carry metadata"))
            meta = first.metadata
            found = self._node.node_status() if meta.wait_ms else None  # the round as this upload found it
            with self._uploads_lock:
                self._uploads.add(context)
                self.uploads_started += 1
            try:
                update = IncomingUpdate(  # the one value that goes down to the fold
                    header=wire.header_from_metadata(meta, owner=peer.name),
                    chunks=_upload_chunks(first, request_iterator, on_complete=lambda: self._forget_upload(context)),
                )
                digest = self._node.submit_update(update)
            finally:
                self._forget_upload(context)
            if found is None:
                return pb.UploadAck(round=meta.round, payload_sha256=digest)
            permit.release()  # the stream is over: waiting for the seal is a status long poll's wait, not a stream's
            status = self._node.node_status_after(found, timeout=meta.wait_ms / 1000, caller=peer.name)
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        return pb.UploadAck(round=meta.round, payload_sha256=digest, status=wire.status_to_proto(status))

    def UploadSmallUpdate(self, request: wire.UploadFrame, context: grpc.ServicerContext) -> pb.UploadAck:
        """An update in one message: UploadUpdate's checks and fold (one code path), no stream set-up."""
        if len(request.data) > INLINE_MODEL_BYTES:
            try:
                try:
                    peer = self._peer(context, (Role.DATA_OWNER,), counted=False)
                except NotEnrolled as exc:
                    self._node.count_rejection("an unauthenticated caller", exc)
                self._node.count_rejection(
                    peer.name,
                    UpdateTooLarge(
                        f"a one-message upload carries at most {INLINE_MODEL_BYTES} bytes, this one "
                        f"{len(request.data)}: send it as a stream (UploadUpdate)"
                    ),
                )
            except EnclaveFLError as exc:
                wire.abort_with(context, exc)
        return self.UploadUpdate(iter((request,)), context)

    def Receipts(self, request: pb.ReceiptsRequest, context: grpc.ServicerContext) -> pb.ReceiptChain:
        try:
            peer = self._peer(context, _ANY_ROLE)
            caller = peer.name if peer.role is Role.DATA_OWNER else ""
            return wire.receipts_to_proto(self._node.receipts(caller=caller))
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)

    def PendingReceipt(self, request: pb.PendingReceiptRequest, context: grpc.ServicerContext) -> pb.SignedReceipt:
        try:
            self._peer(context, (Role.DATA_OWNER,))  # the model owner sees a round only once it is released
            signed = self._node.pending_receipt()
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        return wire.receipt_to_proto(signed)

    def Acknowledge(self, request: pb.AcknowledgeRequest, context: grpc.ServicerContext) -> pb.AcknowledgeAck:
        try:
            peer = self._peer(context, (Role.DATA_OWNER,))
            status = self._node.acknowledge(
                Acknowledgement(
                    owner=peer.name,
                    round=request.round,
                    receipt_sha256=bytes(request.receipt_sha256),
                    signature=bytes(request.signature),
                )
            )
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        return pb.AcknowledgeAck(status=wire.status_to_proto(status))

    def Masking(self, request: pb.MaskingRequest, context: grpc.ServicerContext) -> pb.MaskingReply:
        try:
            peer = self._peer(context, (Role.DATA_OWNER,))  # the step acts as this session's owner, never another
            ready, body = self._node.masking_step(
                owner=peer.name, round_index=request.round, step=request.step, body=bytes(request.body)
            )
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        return pb.MaskingReply(ready=ready, body=body)

    def SubmitInitialModel(self, request_iterator: Iterator[memoryview], context: grpc.ServicerContext) -> pb.SubmitAck:
        try:
            self._peer(context, (Role.MODEL_OWNER,))
            schema = self._node.job.model_schema
            limit = (schema.nbytes if schema is not None else 0) + 16 * 1024 * 1024
            data = bytearray()
            for part in request_iterator:  # views of the received messages (wire.parse_chunk)
                data += part
                if len(data) > limit:
                    raise UpdateTooLarge(f"initial model exceeds {limit} bytes (the job's schema plus header)")
            return pb.SubmitAck(model_sha256=self._node.submit_initial_model(data))  # no bytes() copy
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)

    def Watch(self, request: pb.WatchRequest, context: grpc.ServicerContext) -> Iterator[pb.RoundSummary]:
        try:
            self._stream_permit(context, self._peer(context, _ANY_ROLE), watch=True)
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        after = request.after_round
        while context.is_active():
            summaries, ended = self._node.summaries_after(after, timeout=WATCH_POLL_SECONDS)
            for summary in summaries:
                after = summary.round
                yield wire.summary_to_proto(summary)
            if ended:
                return

    def DownloadFinalModel(self, request: pb.DownloadRequest, context: grpc.ServicerContext) -> Iterator[memoryview]:
        try:
            self._stream_permit(context, self._peer(context, _ANY_ROLE))
            data = self._node.final_model_bytes()
        except EnclaveFLError as exc:
            wire.abort_with(context, exc)
        yield from self._serve(data)

    # --- internals ---------------------------------------------------------------------------
    def _serve(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        """Slices of the one model buffer, each framed (one copy) only once the download budget has room.

        gRPC asks for the next message once it sent the previous one, so a stream holds budget for one chunk
        at a time: its serialized copy and gRPC's own (hence twice the chunk). A caller that stops reading keeps
        its share; after DOWNLOAD_BUDGET_WAIT_SECONDS the others go ahead anyway (each stalled stream then holds
        one chunk beyond the budget), so one owner cannot stall everyone's download.
        """
        for piece in wire.chunk_views(data, self._download_chunk_bytes):
            with self._download_budget.hold(2 * piece.nbytes, wait_at_most=DOWNLOAD_BUDGET_WAIT_SECONDS):
                yield piece

    def _forget_upload(self, context: grpc.ServicerContext) -> None:
        with self._uploads_lock:
            self._uploads.discard(context)

    def cancel_active_uploads(self) -> int:
        """Cancel every upload still streaming (called when a round closes: late or stuck senders).

        An upload whose last byte arrived is no longer "streaming": it is being folded or refused, and its
        sender gets that answer. Cancelling it would tell the sender of an update the round just counted that
        its upload failed (seen as StatusCode.CANCELLED when the round closed on the last update's fold).
        """
        with self._uploads_lock:
            active = list(self._uploads)
        for context in active:
            context.cancel()
        return len(active)

    def _stream_permit(self, context: grpc.ServicerContext, peer: Peer, *, watch: bool = False) -> Permit:
        """Count one stream of `peer` until the RPC ends (however it ends); NodeBusy over a limit."""
        permit = self.gate.stream(f"{peer.role.value} {peer.name!r}" if peer.name else peer.role.value, watch=watch)
        if not context.add_callback(permit.release):  # the RPC already ended
            permit.release()
        return permit

    def _peer(self, context: grpc.ServicerContext, roles: tuple[Role, ...], *, counted: bool = True) -> Peer:
        token = next((v for k, v in context.invocation_metadata() if k == SESSION_METADATA_KEY), None)
        raw = bytes.fromhex(token) if isinstance(token, str) and _is_hex(token) else None
        return self._authority.peer(raw, roles=roles, counted=counted)


def _upload_chunks(
    first: wire.UploadFrame, rest: Iterator[wire.UploadFrame], *, on_complete: Callable[[], None]
) -> Iterator[memoryview]:
    """The upload's data parts; `on_complete` runs once the sender's stream has ended (every byte is in)."""
    if first.data:
        yield first.data
    received = len(first.data)
    try:
        for part in rest:
            if part.metadata is not None:
                raise MalformedUpdate("upload: metadata may appear only in the first part")
            received += len(part.data)
            yield part.data
    except grpc.RpcError:  # the sender went away or the node cancelled the upload
        raise MalformedUpdate(f"upload aborted after {received} bytes (sender gone or round closed)") from None
    on_complete()


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True

"""The node's RPC handlers on grpc.aio: each authenticates its caller, moves chunks, and makes one NodeService call.

    servicer = NodeServicer(node, authority, chunk_bytes=512 << 10, gate=CallGate(limits), pools=pools)
    await servicer.UploadUpdate(parts, context)  # metadata + chunks -> one IncomingUpdate -> node.submit_update

The handlers hold no round logic and no thread while they wait: a Status long poll, a Watch stream and an upload
waiting for the seal are coroutines parked on the node's status changes (transport/waiting.py); NodeService calls
run on a small fixed pool (`pools.work`: hashing, signing, status reads), and an upload's bytes go into the staging
slot from `pools.ingest`, one thread per slot, never one per stream. Every call that waits counts against its
party's limits and the node's (transport/limits.py). Refusals travel as gRPC statuses carrying the error class
name; every refusal a handler makes itself is counted through the node (NodeService.count_rejection).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from grpc import aio

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.messages import RoundPhase
from enclavefl.core.model_source import ModelSource, StreamedModel
from enclavefl.errors import EnclaveFLError, MalformedUpdate, NotEnrolled, UpdateTooLarge
from enclavefl.transport import wire
from enclavefl.transport.answers import StatusAnswers
from enclavefl.transport.api import INLINE_MODEL_BYTES, JobState, NodeStatus
from enclavefl.transport.auth import SESSION_METADATA_KEY, JoinAuthority, Peer, Role
from enclavefl.transport.budget import ByteBudget
from enclavefl.transport.limits import CallGate, NodeLimits
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.uploads import UploadIntake
from enclavefl.transport.waiting import StatusBoard

if TYPE_CHECKING:
    from enclavefl.transport.service import NodeService

T = TypeVar("T")
_ROLES = {pb.ROLE_DATA_OWNER: Role.DATA_OWNER, pb.ROLE_MODEL_OWNER: Role.MODEL_OWNER}
_ANY_ROLE = (Role.DATA_OWNER, Role.MODEL_OWNER)
STATUS_WAIT_MAX_SECONDS = 5.0  # the longest a status long poll (or an upload waiting for the seal) is held
_ENDED = (JobState.FINISHED, JobState.FAILED)
# A signer waits this long for the release and the next opening (no thread held): a round's last signature may come
# seconds after its first, and a signer answered before the opening would ask again.
ACK_WAIT_SECONDS = STATUS_WAIT_MAX_SECONDS
WATCH_IDLE_SECONDS = 30.0  # a Watch re-reads the summaries at least this often (a missed change costs no more)
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


@dataclass(frozen=True, slots=True)
class Pools:
    """The only threads the handlers use: `work` for NodeService calls, `ingest` for uploads (one per slot)."""

    work: Executor
    ingest: Executor
    ingest_slots: int


class NodeServicer:
    """Maps each RPC onto one NodeService call; refusals travel as statuses carrying the error class name."""

    def __init__(
        self,
        node: NodeService,
        authority: JoinAuthority,
        *,
        chunk_bytes: int,
        pools: Pools,
        gate: CallGate | None = None,
    ) -> None:
        self._node = node
        self._authority = authority
        self._pools = pools
        self.gate = gate or CallGate(NodeLimits())
        self._download_chunk_bytes = min(chunk_bytes, DOWNLOAD_CHUNK_BYTES)
        self._intake = UploadIntake(pools.ingest, slots=pools.ingest_slots)
        self._bound: tuple[StatusBoard[NodeStatus], ByteBudget] | None = None
        self.answers = StatusAnswers()  # a status many calls answer with is serialized once (transport/answers.py)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (called on it, before the first call): the node's changes reach it."""
        # the data owners' status, read once per change for every waiting call (an answer of its own reads again)
        board: StatusBoard[NodeStatus] = StatusBoard(
            loop,
            read=lambda: self._work(functools.partial(self._node.node_status, data_owner=True)),
            stopped=lambda: self._node.stopped,
        )
        self._bound = (board, ByteBudget(DOWNLOAD_BUDGET_BYTES))
        self._intake.bind(loop)
        self._node.on_status_change(board.changed)

    @property
    def board(self) -> StatusBoard[NodeStatus]:
        """Where waiting calls park (tests read its counters)."""
        return self._loop_parts()[0]

    # --- open calls --------------------------------------------------------------------------
    @wire.refusals
    async def Attest(self, request: pb.AttestRequest, context: aio.ServicerContext[Any, Any]) -> pb.AttestationBundle:
        self.gate.unauthenticated(context.peer())
        permit = self.gate.attesting()  # refused at once when full, never queued
        try:
            bundle = await self._work(self._node.attest, bytes(request.nonce))
        except ValueError as exc:
            raise MalformedUpdate(str(exc)) from None
        finally:
            permit.release()
        return wire.bundle_to_proto(bundle)

    @wire.refusals
    async def Challenge(
        self, request: pb.ChallengeRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ChallengeResponse:
        self.gate.unauthenticated(context.peer())
        return pb.ChallengeResponse(challenge=self._authority.challenge())

    @wire.refusals
    async def Join(self, request: pb.JoinRequest, context: aio.ServicerContext[Any, Any]) -> pb.JoinResponse:
        role = _ROLES.get(request.role)
        if role is None:
            raise NotEnrolled("join: unknown role")
        join = functools.partial(
            self._authority.join,
            role=role,
            name=request.name,
            challenge=bytes(request.challenge),
            signature=bytes(request.signature),
        )
        token, replaced = await self._work(join)  # an ECDSA verification: on the pool
        return pb.JoinResponse(session=token, replaced_sessions=replaced)

    # --- authenticated calls -----------------------------------------------------------------
    @wire.refusals
    async def Status(self, request: pb.StatusRequest, context: aio.ServicerContext[Any, Any]) -> bytes:
        peer = self._peer(context, _ANY_ROLE)
        seen = wire.status_seen(request)  # None: answer at once
        caller = peer.name if peer.role is Role.DATA_OWNER else ""
        if seen is None:
            return self.answers.status(await self._status(caller))
        with self.gate.held(_party(peer)):
            return self.answers.status(await self._status_after(seen, request.wait_ms / 1000, caller))

    @wire.stream_refusals
    async def DownloadGlobalModel(
        self, request: pb.DownloadRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[memoryview]:
        peer = self._peer(context, _ANY_ROLE)
        with self.gate.stream(_party(peer)):
            # a data owner: the model a round starts from; the model owner: the model released after a round (for
            # its own evaluation of each released model, a value every data owner sees too)
            read = self._node.released_model_bytes if peer.role is Role.MODEL_OWNER else self._node.global_model_bytes
            data = await self._work(read, request.round)
            async for piece in self._serve(data):
                yield piece

    @wire.refusals
    async def UploadUpdate(
        self, request_iterator: AsyncIterator[wire.UploadFrame], context: aio.ServicerContext[Any, Any]
    ) -> pb.UploadAck | bytes:
        return await self._upload(request_iterator, context)

    @wire.refusals
    async def UploadSmallUpdate(
        self, request: wire.UploadFrame, context: aio.ServicerContext[Any, Any]
    ) -> pb.UploadAck | bytes:
        """An update in one message: UploadUpdate's checks and fold (one code path), no stream set-up."""
        if len(request.data) > INLINE_MODEL_BYTES:
            peer = self._uploader(context)
            self._node.count_rejection(
                peer.name,
                UpdateTooLarge(
                    f"a one-message upload carries at most {INLINE_MODEL_BYTES} bytes, this one "
                    f"{len(request.data)}: send it as a stream (UploadUpdate)"
                ),
            )
        return await self._upload(request, context)

    @wire.refusals
    async def Receipts(self, request: pb.ReceiptsRequest, context: aio.ServicerContext[Any, Any]) -> pb.ReceiptChain:
        peer = self._peer(context, _ANY_ROLE)
        caller = peer.name if peer.role is Role.DATA_OWNER else ""
        return wire.receipts_to_proto(await self._work(functools.partial(self._node.receipts, caller=caller)))

    @wire.refusals
    async def PendingReceipt(
        self, request: pb.PendingReceiptRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.SignedReceipt:
        self._peer(context, (Role.DATA_OWNER,))  # the model owner sees a round only once it is released
        return wire.receipt_to_proto(await self._work(self._node.pending_receipt))

    @wire.refusals
    async def Acknowledge(self, request: pb.AcknowledgeRequest, context: aio.ServicerContext[Any, Any]) -> bytes:
        peer = self._peer(context, (Role.DATA_OWNER,))
        ack = Acknowledgement(
            owner=peer.name,
            round=request.round,
            receipt_sha256=bytes(request.receipt_sha256),
            signature=bytes(request.signature),
        )
        with self.gate.held(_party(peer)):
            # counted at once (a signature check, on the pool); then parked until the release opens the next round
            status = await self._work(self._node.acknowledge, ack)
            if not _acknowledged(status, ack.round):
                board, _ = self._loop_parts()
                # every signer of the round waits in one group: the release wakes none, the next opening each once
                await board.until(
                    ("signed", ack.round), functools.partial(_acknowledged, after=ack.round), ACK_WAIT_SECONDS
                )
                status = await self._work(functools.partial(self._node.acknowledge_settled, ack))
        return self.answers.acknowledged(status)

    @wire.refusals
    async def Masking(self, request: pb.MaskingRequest, context: aio.ServicerContext[Any, Any]) -> pb.MaskingReply:
        peer = self._peer(context, (Role.DATA_OWNER,))  # the step acts as this session's owner, never another
        step = functools.partial(
            self._node.masking_step,
            owner=peer.name,
            round_index=request.round,
            step=request.step,
            body=bytes(request.body),
        )
        ready, body = await self._work(step)
        return pb.MaskingReply(ready=ready, body=body)

    @wire.refusals
    async def SubmitInitialModel(
        self, request_iterator: AsyncIterator[memoryview], context: aio.ServicerContext[Any, Any]
    ) -> pb.SubmitAck:
        self._peer(context, (Role.MODEL_OWNER,))
        schema = self._node.job.model_schema
        limit = (schema.nbytes if schema is not None else 0) + 16 * 1024 * 1024
        data = bytearray()
        async for part in request_iterator:  # views of the received messages (wire.parse_chunk)
            data += wire.decoded(part)
            if len(data) > limit:
                raise UpdateTooLarge(f"initial model exceeds {limit} bytes (the job's schema plus header)")
        return pb.SubmitAck(model_sha256=await self._work(self._node.submit_initial_model, data))  # no bytes() copy

    @wire.stream_refusals
    async def Watch(
        self, request: pb.WatchRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.RoundSummary]:
        peer = self._peer(context, _ANY_ROLE)
        board, _ = self._loop_parts()
        with self.gate.stream(_party(peer), watch=True):
            after = request.after_round
            while True:
                view = (await board.current()).round_view()  # before reading: a release after it changes the view
                summaries, ended = await self._work(self._node.summaries_after, after)
                for summary in summaries:
                    after = summary.round
                    yield wire.summary_to_proto(summary)
                if ended or self._node.stopped:
                    return
                await board.until(("view", view), functools.partial(_moved, view=view), WATCH_IDLE_SECONDS)

    @wire.stream_refusals
    async def DownloadFinalModel(
        self, request: pb.DownloadRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[memoryview]:
        with self.gate.stream(_party(self._peer(context, _ANY_ROLE))):
            data = await self._work(self._node.final_model_bytes)
            async for piece in self._serve(data):
                yield piece

    # --- uploads -----------------------------------------------------------------------------
    async def _upload(
        self, parts: wire.UploadFrame | AsyncIterator[wire.UploadFrame], context: aio.ServicerContext[Any, Any]
    ) -> pb.UploadAck | bytes:
        """Both upload calls: authenticate, wait for a staging slot (parked, no thread), ingest on the slot's
        thread, then (if asked) wait for the seal. The call counts as a stream while its bytes come in and as a
        held call while it waits."""
        peer = self._uploader(context)
        small = parts if isinstance(parts, wire.UploadFrame) else None
        streamed = small is None
        permit = self.gate.stream(_party(peer)) if streamed else self.gate.held(_party(peer))
        try:
            first = wire.decoded(small if small is not None else await anext(parts, None))  # type: ignore[arg-type]
            if first is None or first.metadata is None:
                self._node.count_rejection(peer.name, MalformedUpdate("upload: the first part must carry metadata"))
            meta = first.metadata
            board, _ = self._loop_parts()
            found = await board.current() if meta.wait_ms else None  # the round as the upload found it
            header = wire.header_from_metadata(meta, owner=peer.name)
            digest = await self._intake.submit(self._node, header, first, None if small is not None else parts)  # type: ignore[arg-type]
            if found is None:
                return pb.UploadAck(round=meta.round, payload_sha256=digest)
            if streamed:  # the bytes are in: waiting for the seal is a held call, not a stream
                permit.release()
                try:
                    permit = self.gate.held(_party(peer))
                except EnclaveFLError:  # over its limits: the owner asks for the status itself
                    return pb.UploadAck(round=meta.round, payload_sha256=digest)
            status = await self._status_after(found, meta.wait_ms / 1000, peer.name)
        finally:
            permit.release()
        return self.answers.upload(round_index=meta.round, status=status)  # shared by the round's uploads

    def _uploader(self, context: aio.ServicerContext[Any, Any]) -> Peer:
        """The uploading data owner; an unauthenticated upload is counted as a refused update."""
        try:
            return self._peer(context, (Role.DATA_OWNER,), counted=False)
        except NotEnrolled as exc:
            self._node.count_rejection("an unauthenticated caller", exc)

    @property
    def uploads_started(self) -> int:
        """Uploads that got past authentication (tests assert "nothing sent")."""
        return self._intake.started

    def cancel_active_uploads(self) -> int:
        """Cut every upload still streaming or waiting for a slot (when a round closes: late or stuck senders)."""
        return self._intake.cancel_active()

    # --- internals ---------------------------------------------------------------------------
    def _loop_parts(self) -> tuple[StatusBoard[NodeStatus], ByteBudget]:
        if self._bound is None:
            raise RuntimeError("NodeServicer.bind(loop) was not called")
        return self._bound

    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the work pool: NodeService calls take the node's locks and may hash or sign."""
        return await asyncio.get_running_loop().run_in_executor(self._pools.work, fn, *args)

    async def _status(self, caller: str) -> NodeStatus:
        return await self._work(functools.partial(self._node.node_status, data_owner=bool(caller), caller=caller))

    async def _status_after(self, seen: NodeStatus, timeout: float, caller: str) -> NodeStatus:
        """The status once it differs from `seen` (round, phase, attempt, releases, job state), or after `timeout`
        (at most STATUS_WAIT_MAX_SECONDS): parked on the node's changes meanwhile, in one group with every call
        that saw the same view, woken once when it moves."""
        board, _ = self._loop_parts()
        view = seen.round_view()
        timeout = min(max(timeout, 0.0), STATUS_WAIT_MAX_SECONDS)
        status = await board.until(("view", view), functools.partial(_moved, view=view), timeout)
        # a data owner's own view when it has one (its cohort membership and token), and the node notes who saw the
        # end; the model owner's status carries no receipt and no model
        own = not caller or self._node.job.cohort_size or status.job_state in _ENDED
        return await self._status(caller) if own else status

    async def _serve(self, data: ModelSource) -> AsyncIterator[memoryview]:
        """Slices of the one model buffer, each framed (one copy) only once the download budget has room.

        gRPC asks for the next message once it sent the previous one, so a stream holds budget for one chunk
        at a time: its serialized copy and gRPC's own (hence twice the chunk). A caller that stops reading keeps
        its share; after DOWNLOAD_BUDGET_WAIT_SECONDS the others go ahead anyway (each stalled stream then holds
        one chunk beyond the budget), so one owner cannot stall everyone's download.
        """
        _, budget = self._loop_parts()
        chunk = self._download_chunk_bytes
        if not isinstance(data, StreamedModel):
            for piece in wire.chunk_views(data, chunk):
                async with budget.hold(2 * piece.nbytes, wait_at_most=DOWNLOAD_BUDGET_WAIT_SECONDS):
                    yield piece
            return
        # read back from the node's sealed checkpoint: each piece is read and authenticated (AES-GCM, about 1 ms per
        # MiB) on the work pool, not on the event loop that serves every other call
        pieces = data.views(chunk)
        while (piece := await self._work(next, pieces, None)) is not None:
            async with budget.hold(2 * piece.nbytes, wait_at_most=DOWNLOAD_BUDGET_WAIT_SECONDS):
                yield piece

    def _peer(self, context: aio.ServicerContext[Any, Any], roles: tuple[Role, ...], *, counted: bool = True) -> Peer:
        token = next((v for k, v in context.invocation_metadata() or () if k == SESSION_METADATA_KEY), None)
        try:
            raw = bytes.fromhex(token) if isinstance(token, str) else None
        except ValueError:  # not hex: no session
            raw = None
        return self._authority.peer(raw, roles=roles, counted=counted)


def _party(peer: Peer) -> str:
    return f"{peer.role.value} {peer.name!r}" if peer.name else peer.role.value


def _acknowledged(status: NodeStatus, after: int) -> bool:
    """A signer's wait is over: its round was released and the next one opened (or the job ended)."""
    return status.rounds_completed >= after and (status.phase is not RoundPhase.WAITING or status.job_state in _ENDED)


def _moved(status: NodeStatus, view: tuple[object, ...]) -> bool:
    """A long poll's wait is over: the round view differs from the one its caller saw."""
    return status.round_view() != view

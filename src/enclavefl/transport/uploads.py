"""Uploads into the staging slot without a thread per stream: parked on the event loop until a slot is free, then
read by the slot's own thread as the loop reads its parts a few ahead.

    intake = UploadIntake(ingest_pool, slots=1); intake.bind(loop)
    digest = await intake.submit(node, header, first_part, rest_of_stream)   # node.submit_update on the slot thread
    intake.cancel_active()                                                  # the round closed: cut late uploads

An upload waiting for a slot is a coroutine (no thread); the one in the slot runs NodeService.submit_update on the
ingest pool (one thread per slot), which takes each further part from a task on the loop that reads at most
READ_AHEAD_PARTS ahead of it, so gRPC's flow control pushes back on a sender the node is not reading yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING

import grpc

from enclavefl.core.update import IncomingUpdate, UpdateHeader
from enclavefl.errors import MalformedUpdate
from enclavefl.transport import wire

if TYPE_CHECKING:
    from enclavefl.transport.service import NodeService

READ_AHEAD_PARTS = 1  # parts the loop reads ahead of the thread that folds: one message (512 KiB) more than before


class _UploadCut(Exception):
    """The upload's stream ended early (the sender went away, or the node cut it when its round closed)."""


_END = object()  # the stream ended
_CUT = object()  # the stream failed or was cut


class _Upload:
    """One upload whose bytes are still coming: the node may cut it when its round closes (from any thread).

    Once the upload has its slot, a task on the loop reads its parts a few ahead (READ_AHEAD_PARTS) into a queue
    that the slot's thread takes them from. Per part that is one wake-up of each side, where asking the loop for
    each part in turn (a coroutine scheduled from the thread, then its result sent back) cost two round trips
    between the threads, each waking the loop and taking the GIL, on the node's busiest thread. Credits bound
    the read-ahead, so gRPC's flow control still pushes back on a sender the node does not keep up with.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parts: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pump: asyncio.Task[None] | None = None
        self._credits: asyncio.Semaphore | None = None
        self.cut = False

    def start(self, parts: AsyncIterator[wire.UploadFrame]) -> None:
        """Start reading `parts` ahead (on the loop); the slot's thread takes them with `read`."""
        self._credits = asyncio.Semaphore(READ_AHEAD_PARTS)
        self._pump = self._loop.create_task(self._read_ahead(parts, self._credits))

    async def _read_ahead(self, parts: AsyncIterator[wire.UploadFrame], credits: asyncio.Semaphore) -> None:
        try:
            while True:
                await credits.acquire()
                part = await anext(parts, None)
                if part is None:
                    self._parts.put(_END)
                    return
                self._parts.put(part)
        except asyncio.CancelledError:
            self._parts.put(_CUT)
            raise
        except Exception:  # the sender went away (grpc.RpcError) or its stream broke: a cut upload
            self._parts.put(_CUT)

    def read(self) -> wire.UploadFrame | None:
        """The next part, for the slot's thread (blocks until the loop has it); None at the stream's end."""
        if self.cut:
            raise _UploadCut
        part = self._parts.get()
        if part is _END:
            return None
        if part is _CUT or self.cut:
            raise _UploadCut
        assert self._credits is not None
        self._loop.call_soon_threadsafe(self._credits.release)  # room for one more part
        return part  # type: ignore[return-value]

    def stop(self) -> None:
        """On the loop, once the slot's thread is done with the upload: stop reading ahead (a refused upload)."""
        if self._pump is not None:
            self._pump.cancel()

    def cancel(self) -> None:
        """Cut the upload (any thread): its pump stops and the slot's thread, if waiting for a part, wakes."""
        self.cut = True
        self._parts.put(_CUT)
        if self._pump is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the pump is gone with it
                self._loop.call_soon_threadsafe(self._pump.cancel)


class UploadIntake:
    """The staging slots' queue and threads, and the uploads still streaming (to cut when their round closes)."""

    def __init__(self, ingest: Executor, *, slots: int) -> None:
        self._ingest = ingest
        self._slots = asyncio.Semaphore(slots)
        self._lock = threading.Lock()
        self._active: set[_Upload] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = 0  # uploads that got past authentication (tests assert "nothing sent")

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def submit(
        self,
        node: NodeService,
        header: UpdateHeader,
        first: wire.UploadFrame,
        rest: AsyncIterator[wire.UploadFrame] | None,
    ) -> bytes:
        """Fold one upload (its first part received, `rest` the stream's other parts, or None for a one-message
        upload); its payload SHA-256. Waits for a staging slot without holding a thread."""
        loop = self._loop or asyncio.get_running_loop()
        upload = _Upload(loop)
        with self._lock:
            self._active.add(upload)
            self.started += 1
        try:
            parts: Iterator[wire.UploadFrame] = iter(()) if rest is None else _frames(upload)
            update = IncomingUpdate(  # the one value that goes down to the fold
                header=header, chunks=_upload_chunks(first, parts, on_complete=lambda: self._forget(upload))
            )
            async with self._slots:  # parked here while other uploads have the slots
                if upload.cut:
                    raise MalformedUpdate("upload aborted: its round closed while it waited for a staging slot")
                if rest is not None:
                    upload.start(rest)
                try:
                    return await loop.run_in_executor(self._ingest, node.submit_update, update)
                except asyncio.CancelledError:  # the sender went away (or the server stops): free the slot's thread
                    upload.cancel()
                    raise
        finally:
            upload.stop()
            self._forget(upload)

    def cancel_active(self) -> int:
        """Cut every upload still streaming or waiting for a slot (called when a round closes).

        An upload whose last byte arrived is no longer "streaming": it is being folded or refused, and its sender
        gets that answer. Cutting it would tell the sender of an update the round just counted that its upload
        failed.
        """
        with self._lock:
            active = list(self._active)
        for upload in active:
            upload.cancel()
        return len(active)

    def _forget(self, upload: _Upload) -> None:
        with self._lock:
            self._active.discard(upload)


def _frames(upload: _Upload) -> Iterator[wire.UploadFrame]:
    """The rest of a streamed upload, for the slot's thread, as the loop reads it ahead."""
    while (part := upload.read()) is not None:
        yield part


def _upload_chunks(
    first: wire.UploadFrame, rest: Iterator[wire.UploadFrame], *, on_complete: Callable[[], None]
) -> Iterator[memoryview]:
    """The upload's data parts; `on_complete` runs once the sender's stream has ended (every byte is in)."""
    if first.data:
        yield first.data
    received = len(first.data)
    try:
        for part in rest:
            if wire.decoded(part).metadata is not None:
                raise MalformedUpdate("upload: metadata may appear only in the first part")
            received += len(part.data)
            yield part.data
    except (grpc.RpcError, _UploadCut):  # the sender went away or the node cut the upload
        raise MalformedUpdate(f"upload aborted after {received} bytes (sender gone or round closed)") from None
    on_complete()

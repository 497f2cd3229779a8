"""Uploads into the staging slot without a thread per stream: parked on the event loop until a slot is free, then
read by the slot's own thread, one part at a time, from the loop.

    intake = UploadIntake(ingest_pool, slots=1); intake.bind(loop)
    digest = await intake.submit(node, header, first_part, rest_of_stream)   # node.submit_update on the slot thread
    intake.cancel_active()                                                  # the round closed: cut late uploads

An upload waiting for a slot is a coroutine (no thread); the one in the slot runs NodeService.submit_update on the
ingest pool (one thread per slot), which pulls each further part through the loop as it needs it, so gRPC's
flow control pushes back on a sender the node is not reading yet.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Executor, Future

import grpc

from enclavefl.core.update import IncomingUpdate, UpdateHeader
from enclavefl.errors import MalformedUpdate
from enclavefl.transport import wire
from enclavefl.transport.api import NodeService


class _UploadCut(Exception):
    """The upload's stream ended early (the sender went away, or the node cut it when its round closed)."""


class _Upload:
    """One upload whose bytes are still coming: the node may cut it when its round closes (from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._reading: Future[wire.UploadFrame | None] | None = None
        self.cut = False

    def read(self, parts: AsyncIterator[wire.UploadFrame]) -> wire.UploadFrame | None:
        """The next part, read on the loop for the ingest thread that calls this; None at the stream's end."""
        with self._lock:
            if self.cut:
                raise _UploadCut
            future = asyncio.run_coroutine_threadsafe(_next_part(parts), self._loop)
            self._reading = future
        try:
            return future.result()
        except (FutureCancelled, grpc.RpcError, asyncio.CancelledError):
            raise _UploadCut from None

    def cancel(self) -> None:
        with self._lock:
            self.cut = True
            if self._reading is not None:
                self._reading.cancel()


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
            parts: Iterator[wire.UploadFrame] = iter(()) if rest is None else _frames(upload, rest)
            update = IncomingUpdate(  # the one value that goes down to the fold
                header=header, chunks=_upload_chunks(first, parts, on_complete=lambda: self._forget(upload))
            )
            async with self._slots:  # parked here while other uploads have the slots
                if upload.cut:
                    raise MalformedUpdate("upload aborted: its round closed while it waited for a staging slot")
                try:
                    return await loop.run_in_executor(self._ingest, node.submit_update, update)
                except asyncio.CancelledError:  # the sender went away (or the server stops): free the slot's thread
                    upload.cancel()
                    raise
        finally:
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


async def _next_part(parts: AsyncIterator[wire.UploadFrame]) -> wire.UploadFrame | None:
    return await anext(parts, None)


def _frames(upload: _Upload, parts: AsyncIterator[wire.UploadFrame]) -> Iterator[wire.UploadFrame]:
    """The rest of a streamed upload, for the ingest thread: each part read on the loop as the thread asks."""
    while (part := upload.read(parts)) is not None:
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

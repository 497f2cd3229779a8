"""The loop reads an upload's parts a bounded number ahead of the slot's thread (transport/uploads.py).

Reading ahead saves two thread round trips per message on the node's busiest thread; these tests pin what it must
not change: the node still reads only a few parts more than the fold has taken (so gRPC's flow control pushes back
on a sender the node does not keep up with), every byte arrives once and in order, and a cut or broken stream frees
the slot's thread with the one-line refusal it had before.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from enclavefl.core.update import IncomingUpdate
from enclavefl.core.update_message import UpdateMessage
from enclavefl.errors import MalformedUpdate
from enclavefl.transport import wire
from enclavefl.transport.uploads import READ_AHEAD_PARTS, UploadIntake

PART_BYTES = 1024
PARTS = 40


class Sender:
    """An upload's stream as the servicer sees it: PARTS data parts, counted as the node reads them."""

    def __init__(self, *, stall_at: int | None = None, fail_at: int | None = None) -> None:
        self.read = 0
        self.stall_at, self.fail_at = stall_at, fail_at
        self.stalled = threading.Event()

    async def parts(self) -> AsyncIterator[wire.UploadFrame]:
        for i in range(PARTS):
            if i == self.fail_at:
                raise grpc.aio.AioRpcError(grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata())
            if i == self.stall_at:
                self.stalled.set()
                await asyncio.Event().wait()  # a sender that stops sending (cancelled when the node cuts it)
            self.read += 1
            yield wire.UploadFrame(metadata=None, data=memoryview(bytes([i % 256]) * PART_BYTES))


class Fold:
    """A NodeService's submit_update that takes `take_first` parts, then waits for `go` before taking the rest."""

    def __init__(self, take_first: int = PARTS + 1) -> None:
        self.take_first = take_first
        self.taken = 0
        self.waiting, self.go = threading.Event(), threading.Event()
        self.received = bytearray()

    def submit_update(self, update: IncomingUpdate) -> bytes:
        for chunk in update.chunks:
            self.received += chunk
            self.taken += 1
            if self.taken == self.take_first:
                self.waiting.set()
                assert self.go.wait(30)
        return b"digest"


def header() -> Any:
    return UpdateMessage.of(owner="alice", round=1, num_examples=1, payload=b"x").header


def first_part() -> wire.UploadFrame:
    return wire.UploadFrame(metadata=None, data=memoryview(b"F" * PART_BYTES))


def expected_bytes() -> bytes:
    return b"F" * PART_BYTES + b"".join(bytes([i % 256]) * PART_BYTES for i in range(PARTS))


async def submit(intake: UploadIntake, fold: Fold, sender: Sender) -> bytes:
    intake.bind(asyncio.get_running_loop())
    return await intake.submit(fold, header(), first_part(), sender.parts())  # type: ignore[arg-type]


def test_the_loop_reads_at_most_a_few_parts_ahead_of_the_fold_and_every_byte_arrives_in_order() -> None:
    sender, fold = Sender(), Fold(take_first=5)
    with ThreadPoolExecutor(1) as pool:
        intake = UploadIntake(pool, slots=1)

        async def run() -> bytes:
            task = asyncio.ensure_future(submit(intake, fold, sender))
            while not fold.waiting.is_set():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.2)  # time for an unbounded reader to run far ahead
            # the fold took the first part and 4 streamed ones: the loop may hold READ_AHEAD_PARTS more
            assert sender.read <= (fold.taken - 1) + READ_AHEAD_PARTS
            fold.go.set()
            return await task

        assert asyncio.run(run()) == b"digest"
    assert sender.read == PARTS
    assert bytes(fold.received) == expected_bytes()


def test_an_upload_cut_while_the_fold_waits_for_its_next_part_frees_the_slot_thread() -> None:
    sender, fold = Sender(stall_at=10), Fold()
    with ThreadPoolExecutor(1) as pool:
        intake = UploadIntake(pool, slots=1)

        async def run() -> None:
            task = asyncio.ensure_future(submit(intake, fold, sender))
            while not sender.stalled.is_set():
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # the slot's thread is now waiting for part 10
            assert await asyncio.to_thread(intake.cancel_active) == 1  # the round closes, from another thread
            with pytest.raises(MalformedUpdate, match="upload aborted after"):
                await asyncio.wait_for(task, 10)

        asyncio.run(run())
        assert pool.submit(lambda: "free").result(timeout=5) == "free"
    assert fold.taken == 1 + 10  # the first part and the ten sent before the stall, nothing after


def test_a_sender_whose_stream_breaks_mid_upload_gets_the_aborted_refusal() -> None:
    sender, fold = Sender(fail_at=7), Fold()
    with ThreadPoolExecutor(1) as pool:
        intake = UploadIntake(pool, slots=1)
        with pytest.raises(MalformedUpdate, match=f"upload aborted after {8 * PART_BYTES} bytes"):
            asyncio.run(submit(intake, fold, sender))

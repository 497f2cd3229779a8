"""Download chunks framed by hand are protobuf's Chunk on the wire; the byte budget bounds them across streams."""

from __future__ import annotations

import asyncio

import pytest

from enclavefl.transport import wire
from enclavefl.transport.budget import ByteBudget
from enclavefl.transport.proto import enclavefl_pb2 as pb


@pytest.mark.parametrize("size", [1, 127, 128, 16_384, 1 << 20])
def test_a_framed_chunk_is_byte_identical_to_protobufs_and_parses_to_a_view(size: int) -> None:
    model = bytes(range(256)) * (size // 256 + 1)
    piece = memoryview(model)[:size]

    framed = wire.serialize_chunk(piece)
    parsed = wire.parse_chunk(framed)

    assert framed == pb.Chunk(data=bytes(piece)).SerializeToString()
    assert bytes(parsed) == bytes(piece)
    assert parsed.obj is framed  # the owner copies each chunk once, into the model


def test_messages_not_framed_as_one_data_field_go_through_protobuf() -> None:
    with_unknown_field = pb.Chunk(data=b"abc").SerializeToString() + b"\x10\x01"  # field 2, varint 1
    assert bytes(wire.parse_chunk(with_unknown_field)) == b"abc"
    assert bytes(wire.parse_chunk(b"")) == b""  # an empty chunk


def test_streams_wait_for_the_budget_and_never_hold_more_than_it() -> None:
    # prepare: 6 streams of 10 chunks each, a budget of 3 chunks
    held_at_once: list[int] = []

    async def run() -> ByteBudget:
        budget = ByteBudget(3 * 100)

        async def stream() -> None:
            for _ in range(10):
                async with budget.hold(100):
                    held_at_once.append(budget.in_use)
                    await asyncio.sleep(0.001)

        # act
        await asyncio.gather(*(stream() for _ in range(6)))
        return budget

    budget = asyncio.run(run())

    # assert
    assert len(held_at_once) == 60
    assert max(held_at_once) <= 300
    assert budget.peak_in_use == 300  # six streams wanted more: the budget, not the stream count, was the limit
    assert budget.in_use == 0


def test_a_request_larger_than_the_budget_waits_until_it_is_alone() -> None:
    async def run() -> None:
        budget = ByteBudget(100)
        async with budget.hold(10_000):
            assert budget.in_use == 100
        assert budget.in_use == 0

    asyncio.run(run())


def test_a_holder_that_never_lets_go_slows_the_others_but_does_not_stop_them() -> None:
    async def run() -> None:
        # prepare: a stalled download holds the whole budget
        budget = ByteBudget(100)
        done = asyncio.Event()

        async def other_download() -> None:
            async with budget.hold(100, wait_at_most=0.2):
                done.set()

        async with budget.hold(100):
            # act
            await asyncio.wait_for(other_download(), 5)

            # assert
            assert done.is_set()
            assert budget.overdrafts == 1
        assert budget.in_use == 0

    asyncio.run(run())


def _frames(*parts: bytes) -> list[wire.UploadFrame]:
    return [wire.UploadFrame(metadata=None, data=memoryview(p)) for p in parts]


def test_an_upload_stops_counting_as_in_flight_once_its_last_byte_is_in_not_after_the_fold() -> None:
    # The round may close on this very update's fold and cancel whatever still streams: an upload whose stream
    # ended must not be among them (its sender would be told CANCELLED for an update the round counted).
    from enclavefl.transport.uploads import _upload_chunks

    completed: list[str] = []
    first, *rest = _frames(b"ab", b"cd", b"ef")

    # act: the consumer reads the whole stream; then one that stops early
    whole = list(_upload_chunks(first, iter(rest), on_complete=lambda: completed.append("whole")))
    early = _upload_chunks(first, iter(rest), on_complete=lambda: completed.append("early"))
    next(early)
    early.close()

    # assert
    assert b"".join(bytes(c) for c in whole) == b"abcdef"
    assert completed == ["whole"]

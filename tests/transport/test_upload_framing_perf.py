"""Upload parts framed by hand (no protobuf payload copies) are exactly protobuf's UploadPart on the wire."""

from __future__ import annotations

import threading

import pytest

from enclavefl.transport import owner_wire, wire
from enclavefl.transport.proto import enclavefl_pb2 as pb


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 1 << 20])
def test_a_framed_data_part_is_byte_identical_to_protobufs(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)

    framed = owner_wire.serialize_upload_part(memoryview(data))

    assert pb.UploadPart.FromString(framed).data == data
    if size:
        assert framed == pb.UploadPart(data=data).SerializeToString()


def test_a_data_part_is_parsed_as_a_view_of_the_received_message_without_a_copy() -> None:
    serialized = pb.UploadPart(data=b"x" * 1000).SerializeToString()

    frame = wire.parse_upload_part(serialized)

    assert frame.metadata is None
    assert bytes(frame.data) == b"x" * 1000
    assert frame.data.obj is serialized  # a view, not a copy


def test_the_metadata_part_goes_through_protobuf() -> None:
    serialized = pb.UploadPart(metadata=pb.UploadMetadata(round=3, num_examples=7)).SerializeToString()

    frame = wire.parse_upload_part(serialized)

    assert frame.metadata is not None
    assert (frame.metadata.round, frame.metadata.num_examples) == (3, 7)
    assert bytes(frame.data) == b""


@pytest.mark.parametrize(
    "serialized",
    [
        pb.UploadPart(metadata=pb.UploadMetadata(round=1), data=b"abc").SerializeToString(),
        b"\x12\x03abc\x12\x02de",  # a repeated field: protobuf keeps the last one
        b"\x12\x03abc\x08\x01",  # an unknown field after the data
    ],
)
def test_any_other_encoding_is_parsed_exactly_as_protobuf_parses_it(serialized: bytes) -> None:
    expected = pb.UploadPart.FromString(serialized)

    frame = wire.parse_upload_part(serialized)

    assert bytes(frame.data) == expected.data
    assert (frame.metadata is not None) == expected.HasField("metadata")


def test_a_truncated_part_is_refused_by_protobuf() -> None:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    with pytest.raises(DecodeError):
        wire.parse_upload_part(b"\x12\x05ab")


def test_both_ends_bound_what_a_stream_buffers_while_nobody_reads_it() -> None:
    options = dict(wire.channel_options(wire.DEFAULT_CHUNK_BYTES))

    assert options["grpc.http2.bdp_probe"] == 0  # the BDP probe grows every stream's window to megabytes
    assert options["grpc.http2.lookahead_bytes"] == wire.STREAM_WINDOW_BYTES
    assert options["grpc.max_receive_message_length"] == wire.message_limit(wire.DEFAULT_CHUNK_BYTES)


@pytest.mark.parametrize("size", [0, 1, 512, 1000, 1024, 5 * 512 + 7])
def test_parts_framed_ahead_are_the_framed_chunks_in_order(size: int) -> None:
    data = bytes(i % 251 for i in range(size))

    parts = list(owner_wire.framed_ahead(data, 512))

    assert parts == [owner_wire.serialize_upload_part(view) for view in wire.chunk_views(data, 512)]
    assert b"".join(pb.UploadPart.FromString(p).data for p in parts) == data


def test_an_abandoned_upload_stops_its_framing_thread() -> None:
    parts = owner_wire.framed_ahead(bytes(64 * 1024), 1024)  # far more parts than it frames ahead

    next(parts)
    framing = [t for t in threading.enumerate() if t.name == "enclavefl-upload-framing"]
    parts.close()  # what a failed call does to its request iterator
    for thread in framing:
        thread.join(timeout=5)

    assert framing and not any(t.is_alive() for t in framing)


def test_a_framing_failure_is_raised_to_the_sender() -> None:
    parts = owner_wire.framed_ahead(object(), 1024)  # type: ignore[arg-type]  # not a buffer

    with pytest.raises(TypeError):
        next(parts)


def test_the_nodes_malloc_serves_an_upload_message_from_its_heap() -> None:
    # A message at or above the mmap threshold gets a mapping of its own, page-faulted in and unmapped for every
    # message: 0.1-0.15 CPU s more per 400 MB on the node's event loop (docs/performance.md, "Upload ingest").
    from enclavefl.enclave import malloc_tuning

    assert wire.message_limit(wire.DEFAULT_CHUNK_BYTES) < malloc_tuning.MMAP_THRESHOLD_BYTES

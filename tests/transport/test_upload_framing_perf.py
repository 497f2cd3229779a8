"""Upload parts framed by hand (no protobuf payload copies) are exactly protobuf's UploadPart on the wire."""

from __future__ import annotations

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

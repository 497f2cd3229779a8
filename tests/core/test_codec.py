"""Safetensors codec: round trips, canonical bytes, strict refusal of malformed bytes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavefl.core.codec import decode_weights, encode_weights, parse_header
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import CodecError


def sample() -> ModelWeights:
    return ModelWeights(
        {
            "z.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
            "a.bias": np.array([1.5, -2.5], dtype=np.float64),
            "steps": np.array(7, dtype=np.int64),
        }
    )


def raw(header: dict[str, object], data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_round_trip_keeps_values_and_dtypes_in_canonical_order() -> None:
    weights = sample()

    decoded = decode_weights(encode_weights(weights))

    assert list(decoded) == ["a.bias", "steps", "z.weight"]
    for name in weights:
        assert decoded[name].dtype == weights[name].dtype
        np.testing.assert_array_equal(decoded[name], weights[name])
    assert decoded.sha256() == weights.sha256()


def test_equal_weights_built_in_another_order_give_equal_bytes_and_digest() -> None:
    # the trap: torch lists weight before bias, safetensors' own writer sorts; the same model must not differ
    forward = ModelWeights({"weight": np.ones((1, 2), np.float32), "bias": np.zeros(1, np.float32)})
    backward = ModelWeights({"bias": np.zeros(1, np.float32), "weight": np.ones((1, 2), np.float32)})

    assert encode_weights(forward) == encode_weights(backward)
    assert forward.sha256() == backward.sha256()
    assert forward.schema == backward.schema


def test_a_file_from_safetensors_own_writer_decodes_to_the_same_digest(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    weights = sample()
    save_file({n: a.copy() for n, a in reversed(list(weights.items()))}, str(tmp_path / "m.safetensors"))

    decoded = decode_weights((tmp_path / "m.safetensors").read_bytes())

    assert decoded.sha256() == weights.sha256()
    assert encode_weights(decoded) == encode_weights(weights)


def test_the_weights_digest_is_not_the_files_sha256() -> None:
    data = encode_weights(sample())

    assert sample().sha256() != hashlib.sha256(data).digest()  # two different numbers, named apart in the CLI


def test_header_describes_schema_before_data_arrives() -> None:
    data = encode_weights(sample())
    n = struct.unpack("<Q", data[:8])[0]

    header = parse_header(data[: 8 + n])

    assert header.schema == sample().schema
    assert header.total_size == len(data)


@pytest.mark.parametrize(
    ("blob", "fragment"),
    [
        (b"\x01\x02", "need 8 bytes"),
        (struct.pack("<Q", 1 << 40), "header length"),
        (struct.pack("<Q", 50) + b"{}", "only 2 are present"),
        (raw({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "need 8"),
        (raw({"t": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0" * 2), "unsupported dtype"),
        (raw({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}), "invalid shape"),
        (raw({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8), "starts at 4"),
        (raw({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}), "exactly dtype"),
        (raw([1, 2]), "not a JSON object"),  # type: ignore[arg-type]
        (struct.pack("<Q", 3) + b"\xff\xfe{", "not valid JSON"),
    ],
)
def test_malformed_bytes_are_refused_with_the_reason(blob: bytes, fragment: str) -> None:
    with pytest.raises(CodecError, match=fragment):
        decode_weights(blob)


def test_truncated_and_padded_buffers_are_refused() -> None:
    data = encode_weights(sample())

    with pytest.raises(CodecError, match="truncated or padded"):
        decode_weights(data[:-1])
    with pytest.raises(CodecError, match="truncated or padded"):
        decode_weights(data + b"\0")


def test_size_limit_is_enforced_before_parsing() -> None:
    with pytest.raises(CodecError, match="exceed the limit"):
        decode_weights(encode_weights(sample()), max_bytes=10)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(blob: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_weights(blob)


def test_encoding_is_read_back_identically_by_the_safetensors_library() -> None:
    from safetensors.numpy import load

    weights = ModelWeights(
        {
            "flag": np.array([True, False]),
            "w": np.arange(12, dtype=np.float32).reshape(3, 4),
            "b": np.array([1, 2, 3], dtype=np.int8),
            "d": np.array(2.5, dtype=np.float64),
            "h": np.ones((2, 2), dtype=np.float16),
        }
    )

    loaded = load(encode_weights(weights))

    assert set(loaded) == set(weights)
    for name, values in weights.items():
        assert loaded[name].dtype == values.dtype
        assert loaded[name].shape == values.shape
        np.testing.assert_array_equal(loaded[name], values)


def test_encoded_tensors_are_aligned_to_their_item_size() -> None:
    weights = ModelWeights({"flag": np.array([True]), "w": np.ones(5, np.float32), "d": np.ones(3, np.float64)})
    data = encode_weights(weights)
    header = parse_header(data)

    for entry in header.entries:
        assert (header.data_start + entry.begin) % np.dtype(entry.spec.dtype).itemsize == 0, entry.spec.name
    assert list(decode_weights(data)) == ["d", "flag", "w"]  # canonical order, whatever the data layout

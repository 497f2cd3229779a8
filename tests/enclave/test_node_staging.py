"""Streaming ingest: any chunking gives the same update; bad streams stop at the first bad byte."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights, parse_header
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.staging import StagingPool, ingest_stream
from enclavefl.errors import MalformedUpdate, NonFiniteValues, UpdateTooLarge

WEIGHTS = ModelWeights({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float64)})
PAYLOAD = encode_weights(WEIGHTS)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_any_chunking_yields_the_same_update(size: int) -> None:
    buffer = np.empty(WEIGHTS.nbytes, np.uint8)

    staged = ingest_stream(
        chunks(PAYLOAD, size), buffer=buffer, schema=WEIGHTS.schema, max_bytes=WEIGHTS.nbytes, header_limit=4096
    )

    assert staged.weights.allclose(WEIGHTS, atol=0.0)
    assert list(staged.weights) == ["b", "w"]  # canonical order


def test_a_nan_is_refused_before_the_rest_of_the_stream_is_read() -> None:
    first_in_data = parse_header(PAYLOAD).entries[0].spec.name  # safetensors orders data by dtype, then name
    bad = WEIGHTS.copy()
    bad[first_in_data].reshape(-1)[0] = np.nan
    parts = chunks(encode_weights(bad), 16)
    consumed: list[int] = []

    def stream() -> object:
        for i, part in enumerate(parts):
            consumed.append(i)
            yield part

    with pytest.raises(NonFiniteValues):
        ingest_stream(
            stream(),
            buffer=np.empty(WEIGHTS.nbytes, np.uint8),
            schema=WEIGHTS.schema,  # type: ignore[arg-type]
            max_bytes=WEIGHTS.nbytes,
            header_limit=4096,
        )
    assert len(consumed) < len(parts)  # the first tensor is checked as soon as it completes


def test_an_oversized_header_is_refused_from_its_length_prefix() -> None:
    with pytest.raises(UpdateTooLarge, match="header"):
        ingest_stream(
            [PAYLOAD[:8]],
            buffer=np.empty(WEIGHTS.nbytes, np.uint8),
            schema=WEIGHTS.schema,
            max_bytes=WEIGHTS.nbytes,
            header_limit=16,
        )


def test_a_stream_ending_inside_the_header_is_refused() -> None:
    with pytest.raises(MalformedUpdate, match="inside the safetensors header"):
        ingest_stream(
            [PAYLOAD[:20]],
            buffer=np.empty(WEIGHTS.nbytes, np.uint8),
            schema=WEIGHTS.schema,
            max_bytes=WEIGHTS.nbytes,
            header_limit=4096,
        )


def test_the_pool_hands_out_its_slots_and_gives_them_back() -> None:
    pool = StagingPool(nbytes=8, slots=1)

    with pool.slot(still_wanted=lambda: None) as first:
        pass
    with pool.slot(still_wanted=lambda: None) as second:
        pass

    assert first is second  # reused, never reallocated


def _digest_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "enclavefl-digest"]


@pytest.fixture(params=["inline", "background"])
def digest_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small updates are hashed on the receiving thread, larger ones on a helper thread: both paths, same bytes."""
    if request.param == "background":
        monkeypatch.setattr("enclavefl.enclave.staging.INLINE_DIGEST_BYTES", 0)
    return str(request.param)


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_the_payload_hash_is_the_sha256_of_the_bytes_received(size: int, digest_path: str) -> None:
    import hashlib

    staged = ingest_stream(
        chunks(PAYLOAD, size),
        buffer=np.empty(WEIGHTS.nbytes, np.uint8),
        schema=WEIGHTS.schema,
        max_bytes=WEIGHTS.nbytes,
        header_limit=4096,
    )

    assert staged.payload_sha256 == hashlib.sha256(PAYLOAD).digest()
    assert _digest_threads() == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_bad_value_inside_a_large_tensor_stops_the_stream_at_the_chunk_that_carries_it(bad: float) -> None:
    big = ModelWeights({"a": np.zeros(4096, np.float32), "z": np.ones(16, np.float16)})
    big["a"][2000] = bad
    payload = encode_weights(big)
    parts = chunks(payload, 1024)
    consumed: list[int] = []

    def stream() -> object:
        for i, part in enumerate(parts):
            consumed.append(i)
            yield part

    with pytest.raises(NonFiniteValues, match="'a'"):
        ingest_stream(
            stream(),
            buffer=np.empty(big.nbytes, np.uint8),
            schema=big.schema,  # type: ignore[arg-type]
            max_bytes=big.nbytes,
            header_limit=4096,
        )
    data_start = parse_header(payload).data_start
    assert consumed[-1] == (data_start + 2000 * 4) // 1024  # refused at the chunk holding the bad element
    assert _digest_threads() == []  # an aborted ingest leaves nothing reading its slot


def test_a_nan_in_a_half_precision_tensor_split_across_chunks_is_refused() -> None:
    half = ModelWeights({"h": np.ones(101, np.float16)})
    half["h"][100] = np.nan

    with pytest.raises(NonFiniteValues, match="'h'"):
        ingest_stream(
            chunks(encode_weights(half), 3),
            buffer=np.empty(half.nbytes, np.uint8),
            schema=half.schema,
            max_bytes=half.nbytes,
            header_limit=4096,
        )


def test_integer_and_empty_tensors_need_no_finite_check() -> None:
    mixed = ModelWeights({"i": np.arange(5, dtype=np.int64), "e": np.zeros((0, 3), np.float32)})

    staged = ingest_stream(
        chunks(encode_weights(mixed), 5),
        buffer=np.empty(mixed.nbytes, np.uint8),
        schema=mixed.schema,
        max_bytes=mixed.nbytes,
        header_limit=4096,
    )

    assert staged.weights.allclose(mixed, atol=0.0)


def test_a_truncated_stream_is_refused_and_leaves_no_digest_thread(digest_path: str) -> None:
    with pytest.raises(MalformedUpdate, match="truncated"):
        ingest_stream(
            [PAYLOAD[:-4]],
            buffer=np.empty(WEIGHTS.nbytes, np.uint8),
            schema=WEIGHTS.schema,
            max_bytes=WEIGHTS.nbytes,
            header_limit=4096,
        )
    assert _digest_threads() == []

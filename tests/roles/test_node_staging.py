"""Streaming ingest: any chunking gives the same update; bad streams stop at the first bad byte."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights, parse_header
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import MalformedUpdate, NonFiniteValues, UpdateTooLarge
from enclavefl.roles.staging import StagingPool, ingest_stream

WEIGHTS = ModelWeights({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float64)})
PAYLOAD = encode_weights(WEIGHTS)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_any_chunking_yields_the_same_update(size: int) -> None:
    buffer = np.empty(WEIGHTS.nbytes, np.uint8)

    staged = ingest_stream(chunks(PAYLOAD, size), buffer=buffer, schema=WEIGHTS.schema, max_bytes=WEIGHTS.nbytes,
                           header_limit=4096)  # fmt: skip

    assert staged.weights.allclose(WEIGHTS, atol=0.0)
    assert list(staged.weights) == ["w", "b"]


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
        ingest_stream(stream(), buffer=np.empty(WEIGHTS.nbytes, np.uint8), schema=WEIGHTS.schema,  # type: ignore[arg-type]
                      max_bytes=WEIGHTS.nbytes, header_limit=4096)  # fmt: skip
    assert len(consumed) < len(parts)  # the first tensor is checked as soon as it completes


def test_an_oversized_header_is_refused_from_its_length_prefix() -> None:
    with pytest.raises(UpdateTooLarge, match="header"):
        ingest_stream([PAYLOAD[:8]], buffer=np.empty(WEIGHTS.nbytes, np.uint8), schema=WEIGHTS.schema,
                      max_bytes=WEIGHTS.nbytes, header_limit=16)  # fmt: skip


def test_a_stream_ending_inside_the_header_is_refused() -> None:
    with pytest.raises(MalformedUpdate, match="inside the safetensors header"):
        ingest_stream([PAYLOAD[:20]], buffer=np.empty(WEIGHTS.nbytes, np.uint8), schema=WEIGHTS.schema,
                      max_bytes=WEIGHTS.nbytes, header_limit=4096)  # fmt: skip


def test_the_pool_hands_out_its_slots_and_gives_them_back() -> None:
    pool = StagingPool(nbytes=8, slots=1)

    with pool.slot(still_wanted=lambda: None) as first:
        pass
    with pool.slot(still_wanted=lambda: None) as second:
        pass

    assert first is second  # reused, never reallocated

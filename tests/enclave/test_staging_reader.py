"""Ingest from a PayloadReader (a raw stream's recv_into straight into the slot): the same update, the same hash and
the same refusals as from parts, and nothing read past the refusal."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights, parse_header
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.staging import ingest_stream
from enclavefl.errors import MalformedUpdate, NonFiniteValues, UpdateTooLarge

BIG = ModelWeights({"a": np.linspace(-1, 1, 700_000, dtype=np.float32), "b": np.ones(5, np.float64)})
PAYLOAD = encode_weights(BIG)


class Reader:
    """Hands out `data` at most `step` bytes per call, as a socket's recv_into does; counts what it gave."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.given = data, step, 0

    def read_into(self, view: memoryview) -> int:
        n = min(len(view), self.step, len(self.data) - self.given)
        view[:n] = self.data[self.given : self.given + n]
        self.given += n
        return n

    def __iter__(self) -> object:  # the Iterable face of a reader: must not be what ingest uses
        raise AssertionError("a PayloadReader is read with read_into, not iterated")


def ingest(reader: Reader, weights: ModelWeights = BIG) -> object:
    return ingest_stream(
        reader,  # type: ignore[arg-type]
        buffer=np.empty(weights.nbytes, np.uint8),
        schema=weights.schema,
        max_bytes=weights.nbytes,
        header_limit=4096,
    )


@pytest.mark.parametrize("step", [3, 16_384, 10 << 20])
def test_a_reader_yields_the_update_and_the_sha256_of_its_bytes(step: int) -> None:
    staged = ingest(Reader(PAYLOAD, step))

    assert staged.weights.allclose(BIG, atol=0.0)  # type: ignore[attr-defined]
    assert staged.payload_sha256 == hashlib.sha256(PAYLOAD).digest()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "enclavefl-digest"]


def test_a_reader_with_bytes_past_the_announced_size_is_refused() -> None:
    with pytest.raises(UpdateTooLarge, match="more than"):
        ingest(Reader(PAYLOAD + b"\0" * 8, 16_384))


def test_a_reader_that_ends_early_is_refused_as_truncated() -> None:
    with pytest.raises(MalformedUpdate, match="truncated"):
        ingest(Reader(PAYLOAD[:-4], 16_384))
    with pytest.raises(MalformedUpdate, match="inside the safetensors header"):
        ingest(Reader(PAYLOAD[:20], 16_384))


def test_a_nan_stops_the_reader_within_a_window_of_the_bad_value() -> None:
    bad = BIG.copy()
    bad["a"][1000] = np.nan
    reader = Reader(encode_weights(bad), 16_384)

    with pytest.raises(NonFiniteValues, match="'a'"):
        ingest(reader, bad)
    data_start = parse_header(encode_weights(bad)).data_start
    assert reader.given <= data_start + (1 << 20)  # refused after the first window, not after the whole payload

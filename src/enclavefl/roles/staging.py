"""Streaming ingest of one update into a reusable staging buffer, validated while its chunks arrive.

The safetensors header is parsed and checked (names, shapes, dtypes, size) as soon as its bytes are in, before
any tensor bytes are accepted; each tensor is checked for NaN/Inf as soon as its last byte lands. Only a fully
received and valid update is folded into the round's accumulator.

Why stage instead of folding each tensor into the accumulator mid-stream: a stream can still fail after some
tensors were folded (a NaN in the last tensor, a truncated stream, a dropped connection), and floating-point
`acc += w*x` cannot be undone exactly (`(acc + w*x) - w*x != acc` in general), so a refused update would leave
traces in the aggregate. A staging slot costs one model's size; the pool bounds it whatever the number of
owners: memory is global model + accumulator + slots, and extra uploads wait for a free slot before reading
(gRPC flow control then pushes back on their senders).
"""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from enclavefl.core.codec import HEADER_LENGTH_SIZE, SafetensorsHeader, header_length, parse_header
from enclavefl.core.validation import check_finite, check_schema
from enclavefl.core.weights import Array, ModelSchema, ModelWeights
from enclavefl.errors import CodecError, MalformedUpdate, UpdateTooLarge

SLOT_POLL_SECONDS = 0.2  # how often a waiting upload re-checks that its round is still open


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedUpdate:
    """A fully received, validated update: tensors are views into a staging slot (valid until it is released)."""

    weights: ModelWeights
    payload_sha256: bytes
    payload_bytes: int


class StagingPool:
    """A fixed set of preallocated buffers, each the size of the model's tensor data."""

    def __init__(self, *, nbytes: int, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"a staging pool needs at least one slot, got {slots}")
        self.nbytes = nbytes
        self.slots = slots
        self._free: queue.SimpleQueue[Array] = queue.SimpleQueue()
        for _ in range(slots):
            self._free.put(np.empty(nbytes, dtype=np.uint8))

    @contextmanager
    def slot(self, *, still_wanted: Callable[[], None]) -> Iterator[Array]:
        """Wait for a free buffer; `still_wanted` is polled while waiting and raises to give up."""
        while True:
            still_wanted()
            try:
                buffer = self._free.get(timeout=SLOT_POLL_SECONDS)
                break
            except queue.Empty:
                continue
        try:
            yield buffer
        finally:
            self._free.put(buffer)


def ingest_stream(
    chunks: Iterable[bytes | memoryview],
    *,
    buffer: Array,
    schema: ModelSchema,
    max_bytes: int,
    header_limit: int,
    between_chunks: Callable[[], None] = lambda: None,
) -> StagedUpdate:
    """Receive one safetensors update into `buffer`, checking it as it arrives; raises an UpdateRejected leaf."""
    digest = hashlib.sha256()
    head = bytearray()
    header: SafetensorsHeader | None = None
    pending: list[tuple[str, int, int]] = []  # (name, begin, end) not yet checked, in data order
    received = 0  # bytes of the data section written to `buffer`
    data_size = 0
    for chunk in chunks:
        between_chunks()
        view = memoryview(chunk).cast("B")
        digest.update(view)
        while header is None and view:
            need = _header_bytes_needed(head, header_limit)
            take = min(need - len(head), len(view))
            head += view[:take]
            view = view[take:]
            if len(head) >= HEADER_LENGTH_SIZE:  # check the announced length as soon as it is in
                need = _header_bytes_needed(head, header_limit)
            if len(head) == need and need > HEADER_LENGTH_SIZE:
                header = _checked_header(bytes(head), schema, max_bytes)
                data_size = header.data_size
                if data_size > buffer.nbytes:
                    raise UpdateTooLarge(f"update has {data_size} data bytes, a staging slot holds {buffer.nbytes}")
                pending = [(e.spec.name, e.begin, e.end) for e in header.entries]
        if header is None or not view:
            continue
        end = received + len(view)
        if end > data_size:
            raise UpdateTooLarge(f"update stream carries more than the {header.total_size} bytes its header announces")
        buffer[received:end] = np.frombuffer(view, dtype=np.uint8)
        received = end
        while pending and pending[0][2] <= received:
            name, begin, stop = pending.pop(0)
            check_finite(name, _tensor_view(buffer, header, name, begin, stop))
    if header is None:
        raise MalformedUpdate(f"update stream ended after {len(head)} bytes, inside the safetensors header")
    if received < data_size:
        raise MalformedUpdate(
            f"update stream truncated: {received} of the {data_size} data bytes the header announces arrived"
        )
    by_name = {e.spec.name: e for e in header.entries}
    weights = ModelWeights(
        {name: _tensor_view(buffer, header, name, by_name[name].begin, by_name[name].end) for name in header.order}
    )
    return StagedUpdate(weights=weights, payload_sha256=digest.digest(), payload_bytes=header.total_size)


def _header_bytes_needed(head: bytearray, header_limit: int) -> int:
    """8 until the length prefix is in, then 8 + the announced header length (bounded)."""
    if len(head) < HEADER_LENGTH_SIZE:
        return HEADER_LENGTH_SIZE
    try:
        n = header_length(bytes(head[:HEADER_LENGTH_SIZE]))
    except CodecError as exc:
        raise MalformedUpdate(str(exc)) from None
    if n > header_limit:
        raise UpdateTooLarge(f"safetensors header of {n} bytes exceeds the node's limit of {header_limit}")
    return HEADER_LENGTH_SIZE + n


def _checked_header(head: bytes, schema: ModelSchema, max_bytes: int) -> SafetensorsHeader:
    try:
        header = parse_header(head)
    except CodecError as exc:
        raise MalformedUpdate(str(exc)) from None
    check_schema(header.schema, schema, max_bytes=max_bytes)
    return header


def _tensor_view(buffer: Array, header: SafetensorsHeader, name: str, begin: int, end: int) -> Array:
    spec = next(e.spec for e in header.entries if e.spec.name == name)
    return buffer[begin:end].view(spec.dtype).reshape(spec.shape)

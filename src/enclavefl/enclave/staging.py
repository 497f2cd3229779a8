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
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from enclavefl.core.codec import HEADER_LENGTH_SIZE, SafetensorsHeader, TensorEntry, header_length, parse_header
from enclavefl.core.validation import check_finite, check_schema
from enclavefl.core.weights import Array, ModelSchema, ModelWeights
from enclavefl.errors import CodecError, MalformedUpdate, NonFiniteValues, UpdateTooLarge

SLOT_POLL_SECONDS = 0.2  # how often a waiting upload re-checks that its round is still open
INLINE_DIGEST_BYTES = 1 << 20  # an update this small is hashed on its own thread, without a helper thread
# The digest thread is woken once per this many received bytes, not once per message: each wake-up is a futex
# call and a GIL hand-off on the receiving side; the last stride is hashed in `finish` (about 2 ms).
DIGEST_STRIDE_BYTES = 4 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedUpdate:
    """A fully received, validated update: tensors are views into a staging slot (valid until it is released)."""

    weights: ModelWeights
    payload_sha256: bytes
    payload_bytes: int
    max_abs: float  # largest |value| of its floating tensors: bounds what it adds to the accumulator


class StagingPool:
    """Up to `slots` buffers, each the size of the model's tensor data: one made by `prepare` when a round opens (on
    a thread of its own, so its pages are faulted in off the first upload's path), others on first use; all freed
    by `retire`.

    Retiring at round close is what keeps a node at 2x the model between rounds and while it seals (the slot is
    the second copy during a round, next to the accumulator). Each `retire` starts a new generation: a buffer
    still held by an upload, or still being made, when it retires is freed once given back, unless a round has
    asked for a slot again (`prepare`) and then takes it. An upload's bytes never reach the fold unless the whole
    update arrived and checked out (`ingest_stream` raises first).
    """

    def __init__(self, *, nbytes: int, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"a staging pool needs at least one slot, got {slots}")
        self.nbytes = nbytes
        self.slots = slots
        self._free: queue.SimpleQueue[Array] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._made = 0  # buffers that exist: free, held by an upload, or being made by `prepare`
        self._generation = 0  # advanced by each `retire`
        self._wanted = -1  # the generation `prepare` last asked a slot for

    @property
    def allocated(self) -> int:
        """How many buffers exist now (free, in use, or being made)."""
        return self._made

    @contextmanager
    def slot(self, *, still_wanted: Callable[[], None]) -> Iterator[Array]:
        """Wait for a free buffer; `still_wanted` is polled while waiting and raises to give up."""
        while True:
            still_wanted()
            generation = self._generation  # read first: a buffer got across a `retire` counts as the closed round's
            buffer = self._free_or_new()
            if buffer is not None:
                break
            try:
                buffer = self._free.get(timeout=SLOT_POLL_SECONDS)  # also the slot `prepare` is still making
                break
            except queue.Empty:
                continue
        try:
            yield buffer
        finally:
            self._give_back(buffer, generation)

    def prepare(self) -> None:
        """Start making one buffer on a thread of its own, unless one exists or is being made (at round open)."""
        with self._lock:
            self._wanted = self._generation
            if self._made > 0:
                return
            self._made += 1
            generation = self._generation
        try:
            threading.Thread(target=self._make, args=(generation,), name="enclavefl-staging", daemon=True).start()
        except RuntimeError:  # no thread to spare (the enclave's thread slots are fixed): the first upload makes it
            self._give_back(None, generation)

    def _make(self, generation: int) -> None:
        buffer = None
        try:
            buffer = _new_buffer(self.nbytes)
        finally:  # on an error the count drops, and an upload waiting for a slot makes it itself
            self._give_back(buffer, generation)

    def _give_back(self, buffer: Array | None, generation: int) -> None:
        """Keep `buffer` for the current round, or free it: a `retire` came since and no round asked again."""
        with self._lock:
            if buffer is not None and self._generation in (generation, self._wanted):
                self._free.put(buffer)
            else:
                self._made -= 1

    def retire(self) -> int:
        """Free every buffer not in use (see the class); returns how many were freed now."""
        freed = 0
        with self._lock:
            self._generation += 1
            while True:
                try:
                    self._free.get_nowait()
                except queue.Empty:
                    break
                self._made -= 1
                freed += 1
        return freed

    def _free_or_new(self) -> Array | None:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._made >= self.slots:
                return None
            self._made += 1
        try:
            return _new_buffer(self.nbytes)
        except BaseException:
            with self._lock:
                self._made -= 1
            raise


def _new_buffer(nbytes: int) -> Array:
    buffer = np.empty(nbytes, dtype=np.uint8)
    buffer.fill(0)  # fault every page in now, before the stream's bytes arrive (~1 s/GB on this VM)
    return buffer


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
    head = bytearray()
    header: SafetensorsHeader | None = None
    checker: _FiniteChecker | None = None
    digest: _BackgroundDigest | _InlineDigest | None = None
    received = 0  # bytes of the data section written to `buffer`
    data_size = total_size = 0
    try:
        for chunk in chunks:
            between_chunks()
            view = memoryview(chunk).cast("B")
            while header is None and view:
                need = _header_bytes_needed(head, header_limit)
                take = min(need - len(head), len(view))
                head += view[:take]
                view = view[take:]
                if len(head) >= HEADER_LENGTH_SIZE:  # check the announced length as soon as it is in
                    need = _header_bytes_needed(head, header_limit)
                if len(head) == need and need > HEADER_LENGTH_SIZE:
                    header = _checked_header(bytes(head), schema, max_bytes)
                    data_size, total_size = header.data_size, header.total_size
                    if data_size > buffer.nbytes:
                        raise UpdateTooLarge(f"update has {data_size} data bytes, a staging slot holds {buffer.nbytes}")
                    checker = _FiniteChecker(header, buffer)
                    small = data_size <= INLINE_DIGEST_BYTES  # a thread costs more than hashing it here
                    digest = _InlineDigest(bytes(head), buffer) if small else _BackgroundDigest(bytes(head), buffer)
            if checker is None or digest is None or not view:
                continue
            end = received + len(view)
            if end > data_size:
                raise UpdateTooLarge(f"update stream carries more than the {total_size} bytes its header announces")
            buffer[received:end] = np.frombuffer(view, dtype=np.uint8)
            received = end
            checker.check_upto(received)  # while the bytes are still in cache; stops a bad stream early
            digest.advance(received)
        if header is None or checker is None or digest is None:
            raise MalformedUpdate(f"update stream ended after {len(head)} bytes, inside the safetensors header")
        if received < data_size:
            raise MalformedUpdate(
                f"update stream truncated: {received} of the {data_size} data bytes the header announces arrived"
            )
        checker.check_upto(received)  # tensors of zero elements
        payload_sha256 = digest.finish()
    finally:
        if digest is not None:
            digest.abandon()  # never leave a thread reading a slot that is about to be reused
    by_name = {e.spec.name: e for e in header.entries}
    weights = ModelWeights({name: _tensor_view(buffer, by_name[name]) for name in header.order})
    return StagedUpdate(
        weights=weights, payload_sha256=payload_sha256, payload_bytes=header.total_size, max_abs=checker.max_abs
    )


class _FiniteChecker:
    """Checks each floating tensor for NaN/Inf in the order its bytes arrive, a block at a time."""

    def __init__(self, header: SafetensorsHeader, buffer: Array) -> None:
        self._entries = [e for e in header.entries if np.dtype(e.spec.dtype).kind == "f"]
        self._buffer = buffer
        self._index = 0
        self._checked = self._entries[0].begin if self._entries else 0
        self.max_abs = 0.0

    def check_upto(self, received: int) -> None:
        """Check every whole element in `buffer[:received]` not checked yet; raises NonFiniteValues."""
        while self._index < len(self._entries):
            entry = self._entries[self._index]
            self._checked = max(self._checked, entry.begin)
            itemsize = np.dtype(entry.spec.dtype).itemsize
            upto = entry.begin + (min(received, entry.end) - entry.begin) // itemsize * itemsize
            if upto > self._checked:
                block = self._buffer[self._checked : upto].view(entry.spec.dtype)
                self.max_abs = max(self.max_abs, _require_finite(entry.spec.name, block))
                self._checked = upto
            if upto < entry.end:
                return
            self._index += 1


def _require_finite(name: str, block: Array) -> float:
    """The block's largest |value|; NonFiniteValues if it holds NaN or Inf."""
    # min and max propagate NaN and reach +-Inf: two allocation-free passes instead of a bool array per block
    low, high = np.minimum.reduce(block), np.maximum.reduce(block)
    if np.isfinite(low) and np.isfinite(high):
        return max(abs(float(low)), abs(float(high)))
    check_finite(name, block)  # counts the bad values and raises
    raise NonFiniteValues(f"tensor {name!r} holds NaN or Inf")  # pragma: no cover  # check_finite raised


class _BackgroundDigest:
    """SHA-256 of the header and then of the staging buffer as it fills, on a helper thread.

    hashlib releases the GIL on large inputs, so hashing (the costliest per-byte step of ingest) overlaps with
    receiving the next chunks instead of running between them.
    """

    def __init__(self, head: bytes, buffer: Array) -> None:
        self._digest = hashlib.sha256(head)
        self._buffer = buffer
        self._target = 0  # bytes the thread may hash (written by the receiving thread only)
        self._pending = 0  # bytes received (the receiving thread's own count)
        self._done = False  # no more bytes will come
        self._abandoned = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="enclavefl-digest", daemon=True)
        self._thread.start()

    def advance(self, received: int) -> None:
        """`buffer[:received]` is in: hash it (the thread wakes once DIGEST_STRIDE_BYTES are waiting)."""
        if received - self._target < DIGEST_STRIDE_BYTES:
            self._pending = received
            return
        with self._cond:
            self._target = self._pending = received
            self._cond.notify()

    def finish(self) -> bytes:
        """Wait for the hash of everything advanced so far."""
        with self._cond:
            self._target = self._pending
            self._done = True
            self._cond.notify()
        self._thread.join()
        return self._digest.digest()

    def abandon(self) -> None:
        """Stop hashing and wait for the thread: after this returns, the buffer is no longer read."""
        with self._cond:
            self._abandoned = self._done = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        hashed = 0
        while True:
            with self._cond:
                while hashed == self._target and not self._done:
                    self._cond.wait()
                if self._abandoned or (hashed == self._target and self._done):
                    return
                upto = self._target
            self._digest.update(self._buffer[hashed:upto].data)
            hashed = upto


class _InlineDigest:
    """_BackgroundDigest's interface for a small update: hashed on the receiving thread as it arrives."""

    def __init__(self, head: bytes, buffer: Array) -> None:
        self._digest = hashlib.sha256(head)
        self._buffer = buffer
        self._hashed = 0

    def advance(self, received: int) -> None:
        self._digest.update(self._buffer[self._hashed : received].data)
        self._hashed = received

    def finish(self) -> bytes:
        return self._digest.digest()

    def abandon(self) -> None:
        """Nothing runs in the background: the buffer is not read after `advance` returns."""


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


def _tensor_view(buffer: Array, entry: TensorEntry) -> Array:
    return buffer[entry.begin : entry.end].view(entry.spec.dtype).reshape(entry.spec.shape)

"""Sealing in authenticated chunks: a file the enclave can read back in pieces, each piece checked on its own.

    prefix = seal_stream(key, parts, write, label="enclavefl/checkpoint/...")   # write() gets the file's bytes
    reader = SealedReader.of_file(key, fd, label=label)                          # fd: the file, opened to read
    for piece in reader.pieces(offset, length): ...                              # plaintext, chunk by chunk

Why not one AES-GCM over the whole file (tee/inside/seal.py's version 1): its tag is checked only after the last
byte, so reading a range of a large sealed file (a model download served from the node's checkpoint) would hand
out bytes before anything was authenticated. Here every chunk of CHUNK_BYTES plaintext is its own AES-GCM message:
a chunk the host edited, moved, dropped or copied from another file fails its tag, and the reader says which one.

Blob format (version 2):

    magic b"EFLSEAL" (7) | version (2) | nonce prefix (8) | chunk bytes (u32 BE) | chunk 0 | chunk 1 | ...

Each chunk is ciphertext || tag (16); every chunk holds `chunk bytes` of plaintext except the last, which holds
the rest (0 bytes for an empty plaintext: there is always a last chunk). Chunk i's nonce is nonce prefix || i
(u32 BE); its associated data is magic || version || label || chunk bytes || i || last flag, so a chunk opens only at
its own place, with its own file's prefix, and a file cut at a chunk boundary fails (its new last chunk was not
sealed as last). The nonce prefix is random per file (the key is the same for every checkpoint of a job).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclavefl.errors import SealingError
from enclavefl.tee.inside.seal import MAGIC, derived_key

STREAM_VERSION: Final = 2
CHUNK_BYTES: Final = 512 << 10  # a download's message size (transport/wire.py), so a piece is one chunk
_TAG: Final = 16
_HEAD: Final = struct.Struct(">7sB8sI")
_INDEX: Final = struct.Struct(">I")
_MAX_CHUNKS: Final = 1 << 32  # the nonce's counter


def seal_stream(
    key: bytes,
    parts: Iterable[bytes | memoryview],
    write: Callable[[bytes], object],
    *,
    label: str,
    chunk_bytes: int = CHUNK_BYTES,
    urandom: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Seal the concatenation of `parts` for `label`, handing the blob to `write` a chunk at a time; returns the
    file's nonce prefix (a reader can check it names this very file). Buffers: one chunk of plaintext."""
    if not 1 <= chunk_bytes < 1 << 32:
        raise ValueError(f"chunk_bytes must be 1..2**32-1, got {chunk_bytes}")
    prefix = urandom(8)
    if len(prefix) != 8:
        raise ValueError("urandom returned the wrong number of bytes")
    aead = AESGCM(derived_key(key, label))
    write(_HEAD.pack(MAGIC, STREAM_VERSION, prefix, chunk_bytes))
    pending = bytearray()
    index = 0
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            if not pending and len(view) > chunk_bytes:  # whole chunks straight from the part: no copy
                write(_seal_chunk(aead, prefix, label, chunk_bytes, index, view[:chunk_bytes], last=False))
                index += 1
                view = view[chunk_bytes:]
                continue
            take = min(chunk_bytes - len(pending), len(view))
            pending += view[:take]
            view = view[take:]
            if len(pending) == chunk_bytes and view:  # full, and more follows in this part
                write(_seal_chunk(aead, prefix, label, chunk_bytes, index, pending, last=False))
                index += 1
                pending.clear()
        if len(pending) == chunk_bytes:  # full at a part boundary: seal it once we know it is not the last
            write(_seal_chunk(aead, prefix, label, chunk_bytes, index, pending, last=False))
            index += 1
            pending.clear()
    # The last chunk may be empty (a plaintext of a whole number of chunks): it still carries the last flag.
    write(_seal_chunk(aead, prefix, label, chunk_bytes, index, pending, last=True))
    return prefix


class SealedReader:
    """Reads plaintext ranges of a version-2 sealed blob, each chunk authenticated before any byte of it is used.

    `read_at(offset, n)` returns up to n bytes of the blob at offset (os.pread on a file); `blob_size` is its size
    when the reader is made. A later change of the file is caught chunk by chunk (a short read or a failed tag).
    """

    def __init__(
        self, key: bytes, *, label: str, read_at: Callable[[int, int], bytes | memoryview], blob_size: int
    ) -> None:
        self._read_at = read_at
        self._label = label
        head = read_at(0, _HEAD.size)
        if len(head) < _HEAD.size:
            raise SealingError(f"truncated sealed file: {len(head)} bytes, shorter than its {_HEAD.size}-byte header")
        magic, version, self.prefix, chunk_bytes = _HEAD.unpack(head)
        if magic != MAGIC:
            raise SealingError("not a sealed file: bad magic")
        if version != STREAM_VERSION:
            raise SealingError(f"sealed file version {version}, not the chunked version {STREAM_VERSION}")
        if chunk_bytes < 1:
            raise SealingError("sealed file names a chunk size of 0")
        body = blob_size - _HEAD.size
        self._chunk = chunk_bytes
        self._chunks = max(1, -(-body // (chunk_bytes + _TAG)))
        self.size = body - self._chunks * _TAG  # plaintext bytes
        if self.size < 0 or self._chunks > _MAX_CHUNKS:
            raise SealingError(f"sealed file of {blob_size} bytes has no valid chunk layout")
        self._aead = AESGCM(derived_key(key, label))

    @classmethod
    def of_file(cls, key: bytes, fd: int, *, label: str) -> SealedReader:
        """A reader of the open file `fd` (kept open by the caller for as long as the reader is used)."""
        return cls(key, label=label, read_at=lambda offset, n: os.pread(fd, n, offset), blob_size=os.fstat(fd).st_size)

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk `index`; SealingError naming it if it does not authenticate."""
        last = index == self._chunks - 1
        plain = self.size - index * self._chunk if last else self._chunk
        start = _HEAD.size + index * (self._chunk + _TAG)
        data = self._read_at(start, plain + _TAG)
        if len(data) != plain + _TAG:
            raise SealingError(
                f"sealed file changed: chunk {index} of {self._chunks} is cut short"
                f" ({len(data)} of {plain + _TAG} bytes)"
            )
        nonce = self.prefix + _INDEX.pack(index)
        try:
            return self._aead.decrypt(nonce, data, _chunk_aad(self._label, self._chunk, index, last=last))
        except InvalidTag:
            raise SealingError(
                f"sealed file changed: chunk {index} of {self._chunks} (plaintext bytes {index * self._chunk}.."
                f"{index * self._chunk + plain}) fails authentication; it was edited, moved or cut after sealing"
            ) from None

    def pieces(self, offset: int = 0, length: int | None = None) -> Iterator[memoryview]:
        """The plaintext of [offset, offset + length) as views of decrypted chunks, in order (at most a chunk each)."""
        end = self.size if length is None else offset + length
        if not 0 <= offset <= end <= self.size:
            raise SealingError(f"range {offset}..{end} is outside the sealed file's {self.size} plaintext bytes")
        position = offset
        while position < end:
            index = position // self._chunk
            base = index * self._chunk
            plain = memoryview(self.chunk(index))
            piece = plain[position - base : min(end - base, len(plain))]
            position += len(piece)
            yield piece

    def read(self, offset: int = 0, length: int | None = None) -> bytearray:
        """The plaintext of [offset, offset + length) in one buffer (its only copy)."""
        out = bytearray(self.size - offset if length is None else length)
        at = 0
        for piece in self.pieces(offset, length):
            out[at : at + len(piece)] = piece
            at += len(piece)
        return out


def unseal_stream(key: bytes, blob: bytes | bytearray | memoryview, *, label: str) -> bytearray:
    """The whole plaintext of a version-2 blob held in memory (tee/inside/seal.py's `unseal` calls this)."""
    view = memoryview(blob).cast("B")
    reader = SealedReader(key, label=label, read_at=lambda offset, n: view[offset : offset + n], blob_size=len(view))
    return reader.read()


def _seal_chunk(
    aead: AESGCM,
    prefix: bytes,
    label: str,
    chunk_bytes: int,
    index: int,
    plain: bytes | bytearray | memoryview,
    *,
    last: bool,
) -> bytes:
    if index >= _MAX_CHUNKS:
        raise ValueError(f"a sealed stream holds at most {_MAX_CHUNKS} chunks")
    return aead.encrypt(prefix + _INDEX.pack(index), plain, _chunk_aad(label, chunk_bytes, index, last=last))


def _chunk_aad(label: str, chunk_bytes: int, index: int, *, last: bool) -> bytes:
    return MAGIC + bytes([STREAM_VERSION]) + label.encode() + struct.pack(">IIB", chunk_bytes, index, last)

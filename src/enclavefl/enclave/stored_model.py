"""A global model served from the node's sealed checkpoint on disk instead of a resident copy.

    stored = store.open_model(path)               # enclave/checkpoint.py: the model inside that checkpoint
    for view in stored.views(512 << 10): ...      # decrypted and authenticated chunk by chunk, as a download sends
    weights = decode_weights(bytes(stored))       # the whole model, when something needs it resident (rare)

Why: a node that kept the released model resident for downloads held it next to the round's accumulator and its
staging slot, 3x the model (docs/performance.md, "Node memory"). The checkpoint already holds the model, sealed
in chunks (tee/inside/seal_stream.py), so a download reads it back a chunk at a time.

What the host can do to it: the file is on the host's disk and the host may write to it at any time. Every
chunk is authenticated before any of its bytes is sent; a chunk the host changed fails with `CheckpointError`
naming the chunk, and the download stops there. The node reads through a file descriptor it opened on the file it
wrote, so renaming another (valid) checkpoint over it changes nothing, and the file's random nonce prefix is
compared with the one the node sealed. What owners verify is unchanged: the model's SHA-256 in the signed receipt.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator

from enclavefl.errors import CheckpointError, SealingError
from enclavefl.tee.inside.seal_stream import SealedReader


class StoredModel:
    """The safetensors bytes [offset, offset + nbytes) of a sealed file; owns `fd` (closed when dropped)."""

    def __init__(self, *, fd: int, reader: SealedReader, offset: int, nbytes: int, rounds: int) -> None:
        if not 0 <= offset <= offset + nbytes <= reader.size:
            os.close(fd)
            raise CheckpointError(f"checkpoint of round {rounds}: its model lies outside the sealed file")
        self._reader = reader
        self.offset = offset
        self.nbytes = nbytes
        self.rounds = rounds  # the rounds completed when it was sealed: the model released after that round
        self._closer = weakref.finalize(self, os.close, fd)  # a download in flight keeps the object, so the fd

    def __len__(self) -> int:
        return self.nbytes

    def __bytes__(self) -> bytes:
        return bytes(self.read())

    def read(self) -> bytearray:
        """The whole model in one buffer (CheckpointError if a chunk fails)."""
        out = bytearray(self.nbytes)
        at = 0
        for view in self.views(1 << 30):
            out[at : at + len(view)] = view
            at += len(view)
        return out

    def views(self, chunk_bytes: int) -> Iterator[memoryview]:
        """The model in pieces of at most `chunk_bytes`, each decrypted and authenticated just before it is yielded."""
        pieces = self._reader.pieces(self.offset, self.nbytes)
        while True:
            try:
                piece = next(pieces)
            except StopIteration:
                return
            except SealingError as exc:
                raise CheckpointError(f"the sealed checkpoint of round {self.rounds} changed on disk: {exc}") from None
            for start in range(0, len(piece), chunk_bytes):
                yield piece[start : start + chunk_bytes]

    def close(self) -> None:
        self._closer()

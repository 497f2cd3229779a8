"""What a node hands a transport to send as a model: bytes in memory, or a model read back a piece at a time.

    source = node.global_model_bytes(round_index)        # bytes, or a StreamedModel (the sealed checkpoint)
    pieces = source.views(chunk) if isinstance(source, StreamedModel) else chunk_views(source, chunk)

A node serves the released model from its sealed checkpoint on disk rather than from a resident copy
(enclave/stored_model.py), so a transport streams it without ever holding it whole; `bytes(source)` reads it
whole where a caller needs it so (the in-memory transport, a small model inlined in a status).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from enclavefl.core.codec import ModelBytes


@runtime_checkable
class StreamedModel(Protocol):
    """A model's safetensors bytes, read (and checked) a piece at a time."""

    def __len__(self) -> int: ...

    def __bytes__(self) -> bytes: ...

    def views(self, chunk_bytes: int) -> Iterator[memoryview]:
        """The bytes in order, in pieces of at most `chunk_bytes`; raises an EnclaveFLError if a piece fails."""
        ...


ModelSource = ModelBytes | StreamedModel

"""Safetensors codec: bytes in, bytes out; no pickle anywhere.

The format is safetensors' own (the `safetensors` library reads what `encode_weights` writes; a test holds
it to that). Decoding of untrusted bytes goes through a strict header parser (`parse_header`) so that a
streaming receiver can check names, shapes, dtypes and sizes before any tensor bytes arrive, then
`decode_weights` builds arrays with `np.frombuffer` (no copies).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from enclavefl.core.weights import (
    DTYPE_TO_SAFETENSORS,
    SAFETENSORS_TO_DTYPE,
    Array,
    ModelSchema,
    ModelWeights,
    TensorSpec,
)
from enclavefl.errors import CodecError

HEADER_LENGTH_SIZE = 8
# A model's safetensors bytes: `bytes`, or a `bytearray` when built in place (the node's next global model,
# a downloaded model) and never written afterwards. Either way one buffer, no copy to make it `bytes`.
ModelBytes = bytes | bytearray
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a header beyond 16 MiB is an attack, not a model


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorEntry:
    """Where one tensor's bytes lie in the data section (after the header)."""

    spec: TensorSpec
    begin: int
    end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetensorsHeader:
    """A parsed, validated safetensors header. `data_start` is the offset of the data section."""

    entries: tuple[TensorEntry, ...]  # in data order: the order bytes arrive in
    order: tuple[str, ...]  # canonical order (by name), as in ModelWeights
    metadata: Mapping[str, str]
    data_start: int

    @property
    def data_size(self) -> int:
        return self.entries[-1].end if self.entries else 0

    @property
    def total_size(self) -> int:
        return self.data_start + self.data_size

    @property
    def schema(self) -> ModelSchema:
        by_name = {e.spec.name: e.spec for e in self.entries}
        return ModelSchema(tensors=tuple(by_name[n] for n in self.order))


def encode_weights(weights: ModelWeights, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialize weights to safetensors bytes in one allocation; canonical: equal weights give equal bytes.

    The layout is safetensors' own: a little-endian u64 header length, a JSON header padded with spaces to
    8 bytes, then the tensors, widest dtype first and by name within a width, so every tensor is aligned to its
    item size and nothing depends on the order the weights were built in. It is written
    here rather than through `safetensors.numpy.save`, which builds the buffer and then copies it into
    `bytes`: two model-sized allocations where the node can least afford them (at round close).
    """
    return b"".join(encode_parts(weights, metadata=metadata))


def encode_parts(weights: ModelWeights, *, metadata: Mapping[str, str] | None = None) -> list[bytes | memoryview]:
    """`encode_weights`' bytes as pieces: the length and header, then a view of each tensor (no tensor copied).

    For a writer that streams the model somewhere (a sealed checkpoint) without building it in memory first.
    """
    meta = dict(sorted((metadata or {}).items()))
    arrays = [(n, np.require(a, dtype=a.dtype.newbyteorder("<"), requirements="C")) for n, a in weights.items()]
    layout = sorted(arrays, key=lambda item: (-item[1].dtype.itemsize, item[0]))
    header: dict[str, object] = {"__metadata__": meta}
    offset = 0
    for name, a in layout:
        header[name] = {
            "dtype": DTYPE_TO_SAFETENSORS[a.dtype.name],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(HEADER_LENGTH_SIZE + len(text)) % 8)
    parts: list[bytes | memoryview] = [struct.pack("<Q", len(text)), text]
    parts.extend(a.reshape(-1).view(np.uint8).data for _, a in layout)
    return parts


def header_length(prefix: bytes) -> int:
    """The header length announced in the first 8 bytes, bounds-checked."""
    if len(prefix) < HEADER_LENGTH_SIZE:
        raise CodecError(f"safetensors: need {HEADER_LENGTH_SIZE} bytes for the header length, got {len(prefix)}")
    (n,) = struct.unpack("<Q", prefix[:HEADER_LENGTH_SIZE])
    if n == 0 or n > MAX_HEADER_BYTES:
        raise CodecError(f"safetensors: header length {n} is outside 1..{MAX_HEADER_BYTES}")
    return int(n)


def parse_header(data: bytes | bytearray | memoryview) -> SafetensorsHeader:
    """Parse and validate the header at the start of `data` (which may be only the header's bytes)."""
    n = header_length(bytes(data[:HEADER_LENGTH_SIZE]))
    if len(data) < HEADER_LENGTH_SIZE + n:
        raise CodecError(f"safetensors: header announces {n} bytes but only {len(data) - 8} are present")
    try:
        raw = json.loads(bytes(data[HEADER_LENGTH_SIZE : HEADER_LENGTH_SIZE + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"safetensors: header is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CodecError("safetensors: header is not a JSON object")
    metadata = raw.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CodecError("safetensors: __metadata__ must map strings to strings")
    entries = [_parse_entry(name, info) for name, info in raw.items()]
    entries.sort(key=lambda e: e.begin)
    expected = 0
    for e in entries:
        if e.begin != expected:
            raise CodecError(f"safetensors: tensor {e.spec.name!r} starts at {e.begin}, expected {expected}")
        expected = e.end
    return SafetensorsHeader(
        entries=tuple(entries),
        order=tuple(sorted(e.spec.name for e in entries)),
        metadata=metadata,
        data_start=HEADER_LENGTH_SIZE + n,
    )


def decode_weights(data: bytes | bytearray | memoryview, *, max_bytes: int | None = None) -> ModelWeights:
    """Decode a whole safetensors buffer into weights (zero-copy, read-only arrays)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise CodecError(f"safetensors: {len(data)} bytes exceed the limit of {max_bytes}")
    header = parse_header(data)
    if len(data) != header.total_size:
        raise CodecError(
            f"safetensors: buffer holds {len(data)} bytes, header describes {header.total_size} (truncated or padded)"
        )
    view = memoryview(data)
    by_name = {e.spec.name: e for e in header.entries}
    tensors: dict[str, Array] = {}
    for name in header.order:
        e = by_name[name]
        chunk = view[header.data_start + e.begin : header.data_start + e.end]
        tensors[name] = np.frombuffer(chunk, dtype=e.spec.dtype).reshape(e.spec.shape)
    return ModelWeights(tensors)


def _parse_entry(name: object, info: object) -> TensorEntry:
    if not isinstance(name, str) or not name:
        raise CodecError("safetensors: tensor names must be non-empty strings")
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CodecError(f"safetensors: tensor {name!r} needs exactly dtype, shape and data_offsets")
    tag, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if tag not in SAFETENSORS_TO_DTYPE:
        raise CodecError(f"safetensors: tensor {name!r} has unsupported dtype {tag!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CodecError(f"safetensors: tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise CodecError(f"safetensors: tensor {name!r} has invalid data_offsets {offsets!r}")
    spec = TensorSpec(name=name, shape=tuple(shape), dtype=SAFETENSORS_TO_DTYPE[tag])
    if offsets[1] - offsets[0] != spec.nbytes:
        raise CodecError(
            f"safetensors: tensor {name!r} spans {offsets[1] - offsets[0]} bytes, "
            f"its shape and dtype need {spec.nbytes}"
        )
    return TensorEntry(spec=spec, begin=offsets[0], end=offsets[1])

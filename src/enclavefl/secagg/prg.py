"""Masks: AES-256-CTR keystreams from `cryptography`, read as vectors of integers modulo 2^bits.

    add_mask_inplace(acc, seed, sign=+1)     # acc += PRG(seed) mod 2^bits, in cache-sized chunks
    mask = keystream(seed, count, np.uint64) # the same stream as one array (tests, small vectors)

A 32-byte seed keys AES-256 with a zero counter block; one seed is one stream and is never reused across
rounds (seeds come from fresh X25519 agreements and fresh self-mask seeds every round). Uniform bytes read
as uint32/uint64 are uniform modulo 2^32/2^64, so a masked value reveals nothing about the value under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES: Final = 32
CHUNK_BYTES: Final = 1 << 18  # 256 KiB: the keystream chunk stays in cache while it is added
_ZEROS: Final = bytes(CHUNK_BYTES)
_COUNTER0: Final = bytes(16)


def _encryptor(seed: bytes) -> object:
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a mask seed is {SEED_BYTES} bytes, got {len(seed)}")
    return Cipher(algorithms.AES(seed), modes.CTR(_COUNTER0)).encryptor()


def add_mask_inplace(acc: npt.NDArray[np.unsignedinteger], seed: bytes, *, sign: int = 1) -> None:
    """acc += sign * PRG(seed) modulo 2^bits, where bits is acc's width; `acc` is 1-D and C-contiguous."""
    add_masks_inplace(acc, [(seed, sign)])


def add_masks_inplace(acc: npt.NDArray[np.unsignedinteger], masks: Sequence[tuple[bytes, int]]) -> None:
    """acc += sum of sign * PRG(seed) over `masks`, modulo 2^bits, in one pass over `acc`.

    Why one pass: the chunk of `acc` stays in cache while every stream is added to it, so memory traffic is
    one read and one write of `acc` however many masks there are (an owner has degree + 1, the enclave one
    per survivor plus a few per dropout); the cost left is the AES-CTR keystream itself.
    """
    if acc.ndim != 1 or not acc.flags.c_contiguous or acc.dtype.kind != "u":
        raise ValueError("masks apply to a 1-D C-contiguous unsigned integer array")
    if any(sign not in (1, -1) for _, sign in masks):
        raise ValueError("each mask's sign is +1 or -1")
    streams = [(_encryptor(seed), np.add if sign == 1 else np.subtract) for seed, sign in masks]
    itemsize = acc.dtype.itemsize
    per_chunk = CHUNK_BYTES // itemsize
    raw = bytearray(CHUNK_BYTES + 15)  # update_into wants block_size - 1 spare bytes
    stream = np.frombuffer(raw, dtype=acc.dtype, count=per_chunk)
    for start in range(0, acc.size, per_chunk):
        part = acc[start : start + per_chunk]
        nbytes = part.size * itemsize
        zeros = _ZEROS[:nbytes] if nbytes < CHUNK_BYTES else _ZEROS
        for encryptor, op in streams:
            encryptor.update_into(zeros, raw)  # type: ignore[attr-defined]
            op(part, stream[: part.size], out=part)


def keystream(seed: bytes, count: int, dtype: type[np.unsignedinteger]) -> npt.NDArray[np.unsignedinteger]:
    """PRG(seed) as `count` integers of `dtype` (the stream add_mask_inplace adds)."""
    out = np.zeros(count, dtype=dtype)
    add_mask_inplace(out, seed)
    return out


def raw_keystream_into(seed: bytes, out: bytearray) -> None:
    """The bare AES-256-CTR keystream into `out` (the benchmark's baseline: no integer arithmetic at all)."""
    enc = _encryptor(seed)
    view = memoryview(out)
    for start in range(0, len(out) - 15, CHUNK_BYTES):
        end = min(start + CHUNK_BYTES, len(out) - 15)
        enc.update_into(_ZEROS[: end - start], view[start : end + 15])  # type: ignore[attr-defined]

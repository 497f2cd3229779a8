"""Gaussian noise for central DP from a cryptographically secure stream (never `np.random`).

The ChaCha20 keystream from `cryptography` gives uniform 53-bit doubles; the Box-Muller transform turns
pairs of them into standard normals, vectorised in numpy over preallocated buffers. Production sources are
keyed with 32 bytes of `os.urandom`; tests inject a fixed key to get a reproducible (still cryptographic)
stream. Known limit: like every floating-point Gaussian sampler, the result is not an exact Gaussian in its
lowest bits (Mironov 2012); a discrete Gaussian on a fixed-point grid would close that gap.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

Float64Array = npt.NDArray[np.float64]

_TWO_PI = 2.0 * np.pi
_INV_2_53 = 1.0 / float(1 << 53)
_CHUNK_PAIRS = 1 << 16  # normals are made in blocks of 2 * 64 Ki to bound the scratch buffers (3 MiB)


class NoiseSource(Protocol):
    """Fills buffers with independent standard normal draws."""

    def standard_normal_into(self, out: Float64Array) -> None:
        """Overwrite every element of the C-contiguous float64 array `out` with an N(0, 1) draw."""
        ...


class ChaCha20Gaussian:
    """Standard normals from a ChaCha20 keystream (Box-Muller over 53-bit uniforms)."""

    def __init__(self, *, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"ChaCha20 needs a 32-byte key, got {len(key)}")
        # One key, one stream: the 16-byte nonce/counter block starts at zero and the encryptor keeps its place.
        self._stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
        self._zeros = bytes(16 * _CHUNK_PAIRS)
        self._raw = bytearray(16 * _CHUNK_PAIRS + 15)  # update_into may need block_size - 1 spare bytes
        self._u1 = np.empty(_CHUNK_PAIRS, dtype=np.float64)
        self._u2 = np.empty(_CHUNK_PAIRS, dtype=np.float64)
        self._radius = np.empty(_CHUNK_PAIRS, dtype=np.float64)

    @classmethod
    def from_urandom(cls) -> ChaCha20Gaussian:
        """The production source: a fresh 32-byte key from the OS CSPRNG, never stored."""
        return cls(key=os.urandom(32))

    def standard_normal_into(self, out: Float64Array) -> None:
        if out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError("noise buffer must be a C-contiguous float64 array")
        flat = out.reshape(-1)
        pos = 0
        while pos < flat.size:
            pairs = min(_CHUNK_PAIRS, (flat.size - pos + 1) // 2)
            self._fill_pairs(pairs)
            take = min(2 * pairs, flat.size - pos)
            half = (take + 1) // 2
            # cos half first, then the sin half: both are independent standard normals
            np.multiply(self._radius[:half], np.cos(self._u2[:half]), out=flat[pos : pos + half])
            rest = take - half
            if rest:
                np.multiply(self._radius[:rest], np.sin(self._u2[:rest]), out=flat[pos + half : pos + take])
            pos += take

    def _fill_pairs(self, pairs: int) -> None:
        """u1 in (0, 1] and u2 = 2*pi*u in [0, 2*pi), then radius = sqrt(-2 ln u1), for `pairs` entries."""
        nbytes = 16 * pairs
        self._stream.update_into(self._zeros[:nbytes], self._raw)
        words = np.frombuffer(self._raw, dtype="<u8", count=2 * pairs)
        u1, u2, radius = self._u1[:pairs], self._u2[:pairs], self._radius[:pairs]
        np.multiply(words[0::2] >> np.uint64(11), _INV_2_53, out=u1)
        np.subtract(1.0, u1, out=u1)  # (0, 1]: log never sees zero
        np.multiply(words[1::2] >> np.uint64(11), _INV_2_53 * _TWO_PI, out=u2)
        np.log(u1, out=radius)
        np.multiply(radius, -2.0, out=radius)
        np.sqrt(radius, out=radius)

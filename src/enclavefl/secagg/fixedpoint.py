"""Fixed-point encoding of float vectors into Z_(2^bits), where masks cancel exactly.

    codec = FixedPoint(scale=2**16, bits=64)
    q = codec.encode(x)                  # round(x * scale) mod 2^bits, as uint64
    total = codec.decode(sum_mod)        # the signed sum / scale, as float64
    codec.sum_error_bound(n)             # |decode(sum of n encodings) - sum of the n x| per coordinate

Why fixed point: masks must cancel exactly, and float addition does not associate. Each coordinate is rounded
to the nearest multiple of 1/scale, an error of at most 1/(2 scale); a sum of n encodings is therefore within
n/(2 scale) of the real sum per coordinate, provided no partial sum leaves (-2^(bits-1), 2^(bits-1)) (the job
validator checks n * (clip * scale + 1/2) < 2^(bits-1); see secagg/params.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

UintArray = npt.NDArray[np.unsignedinteger[Any]]
F64 = npt.NDArray[np.float64]
SUPPORTED_BITS = (32, 64)


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedPoint:
    """Round-to-nearest fixed point with `scale` steps per unit, in arithmetic modulo 2^bits."""

    scale: float
    bits: int = 64

    def __post_init__(self) -> None:
        if self.bits not in SUPPORTED_BITS:
            raise ValueError(f"fixed point works modulo 2^32 or 2^64, got 2^{self.bits}")
        if not self.scale > 0 or self.scale != self.scale:
            raise ValueError(f"scale must be positive, got {self.scale!r}")

    @property
    def uint(self) -> type[np.uint32] | type[np.uint64]:
        return np.uint64 if self.bits == 64 else np.uint32

    @property
    def sint(self) -> type[np.int32] | type[np.int64]:
        return np.int64 if self.bits == 64 else np.int32

    @property
    def max_magnitude(self) -> float:
        """The largest |value| whose encoding does not wrap: (2^(bits-1) - 1) / scale."""
        return float(2 ** (self.bits - 1) - 1) / self.scale

    def encode(self, values: F64) -> UintArray:
        """round(values * scale) mod 2^bits; ValueError if any value is non-finite or would wrap on its own."""
        scaled = np.multiply(values, self.scale, dtype=np.float64)
        np.rint(scaled, out=scaled)
        limit = float(2 ** (self.bits - 1) - 1)
        if not np.all(np.abs(scaled) <= limit):  # also catches NaN (comparisons with NaN are False)
            raise ValueError(f"a value is non-finite or beyond ±{self.max_magnitude:g}: it cannot be encoded")
        # float64 -> int64 is exact for |v| < 2^53; beyond, rint has already made it an integer-valued double.
        signed = scaled.astype(np.int64)
        if self.bits == 64:
            return signed.view(np.uint64)
        return signed.astype(np.int32).view(np.uint32)

    def decode(self, total: UintArray) -> F64:
        """The signed value of `total` (a sum of encodings modulo 2^bits) divided by scale."""
        if total.dtype != np.dtype(self.uint):
            raise ValueError(f"expected {np.dtype(self.uint)}, got {total.dtype}")
        return total.view(self.sint).astype(np.float64) / self.scale

    def sum_error_bound(self, count: int) -> float:
        """Per-coordinate bound on |decode(sum of `count` encodings) - exact sum|, without wrap-around."""
        return count / (2.0 * self.scale)

    def wraps(self, *, count: int, max_abs: float) -> bool:
        """Whether a sum of `count` encodings of values with |v| <= max_abs could leave the signed range."""
        return count * (max_abs * self.scale + 0.5) >= float(2 ** (self.bits - 1))

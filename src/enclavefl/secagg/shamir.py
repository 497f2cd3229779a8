"""Shamir secret sharing of 32-byte seeds over the prime field GF(2^521 - 1).

    shares = split(secret, holders=5, threshold=3)   # Share(x=1..5, y); any 3 rebuild, any 2 reveal nothing
    secret = reconstruct(shares[:3])

The field is the Mersenne prime 2^521 - 1, larger than any 256-bit secret, so a seed maps to a field
element without reduction. Polynomial coefficients come from `secrets` (the OS CSPRNG). x-coordinates are
1..holders (never 0: f(0) is the secret). Reconstruction is Lagrange interpolation at 0 with distinct x.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

PRIME: Final = (1 << 521) - 1
SHARE_BYTES: Final = 66  # a field element, big-endian
SECRET_BYTES: Final = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class Share:
    x: int  # 1..holders
    y: int  # f(x) mod PRIME

    def __post_init__(self) -> None:
        if not 1 <= self.x < PRIME or not 0 <= self.y < PRIME:
            raise ValueError("a share's coordinates are outside the field")

    def to_bytes(self) -> bytes:
        return self.x.to_bytes(2, "big") + self.y.to_bytes(SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        if len(data) != 2 + SHARE_BYTES:
            raise ValueError(f"a share is {2 + SHARE_BYTES} bytes, got {len(data)}")
        return cls(x=int.from_bytes(data[:2], "big"), y=int.from_bytes(data[2:], "big"))


def split(secret: bytes, *, holders: int, threshold: int) -> list[Share]:
    """`holders` shares of `secret` (32 bytes); any `threshold` of them rebuild it, fewer say nothing."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"the secret is {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= holders < 1 << 16:
        raise ValueError(f"need 1 <= threshold <= holders < 65536, got threshold={threshold}, holders={holders}")
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = []
    for x in range(1, holders + 1):
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares.append(Share(x=x, y=y))
    return shares


def reconstruct(shares: Sequence[Share]) -> bytes:
    """The secret under `shares` (distinct x). With fewer than the threshold the result is a wrong value:
    callers check they hold at least the threshold, and check the outcome (the unmasked sum's bound)."""
    xs = [s.x for s in shares]
    if not shares or len(set(xs)) != len(xs):
        raise ValueError("reconstruction needs at least one share and distinct x-coordinates")
    secret = 0
    for i, share in enumerate(shares):
        numerator, denominator = 1, 1
        for j, other in enumerate(xs):
            if j != i:
                numerator = numerator * other % PRIME  # (0 - x_j) / (x_i - x_j), signs cancel pairwise
                denominator = denominator * (other - share.x) % PRIME
        secret = (secret + share.y * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >> (8 * SECRET_BYTES):
        raise ValueError("the shares do not rebuild a 32-byte secret: some are corrupt or from another secret")
    return secret.to_bytes(SECRET_BYTES, "big")

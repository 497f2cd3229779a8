"""Distributed Skellam noise for masked DP jobs: each owner noises its own encoded update before masking.

    sigma_acc = skellam_accounted_multiplier(noise_multiplier=1.0, dp_clip=1.0, clip=1.0, scale=2**16, dimension=d)
    source = SkellamSource.from_urandom()
    add_owner_noise_inplace(encoded, source=source, per_owner_variance=owner_variance(...))   # before masking

Mechanism (Agarwal, Kairouz, Liu, NeurIPS 2021): every owner adds Sk(lam, lam) = Pois(lam) - Pois(lam) per
coordinate of its fixed-point encoded update, lam = (sigma C gamma)^2 / (2 K), in the ring's integers. The sum of
any K owners' noise is Sk(K lam, K lam), variance V = (sigma C gamma)^2: the job's noise multiplier sigma times
dp.clip_norm C, in real units. Only K owners' noise is counted (a colluding owner may add none); fewer than K
inputs and the round is never unmasked.

Accounting (Agarwal et al. 2021, Theorem 3.5; mu = K lam): the Skellam mechanism of L2 / L1 sensitivity D2 / D1
is (alpha, eps)-RDP with eps <= alpha D2^2 / (4 mu) + min(((2 alpha - 1) D2^2 + 6 D1) / (16 mu^2), 3 D1 / (4 mu)).
Taking the second branch, and alpha >= 1, eps <= alpha (D2^2 + 3 D1) / (2 V): at every order it is at most the
RDP of a Gaussian mechanism of noise multiplier sigma_acc = sqrt(V / (D2^2 + 3 D1)), which is what the job's
schedule composes (RDP only: a PLD accountant would need the Skellam's own loss distribution). The encoded update
of an owner that clipped to c has D2 <= c gamma + sqrt(d) / 2 (rounding each of d coordinates moves it by at
most 1/2) and, being an integer vector, D1 <= min(sqrt(d) D2, D2^2).

Sampling: Poisson variates by Hormann's transformed rejection (PTRS, 1993), vectorised in numpy over uniforms
from a ChaCha20 keystream (`cryptography`), never `np.random`. Known limit, as for every floating-point sampler:
the acceptance test runs in float64, so the law is PTRS's up to float rounding.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MIN_LAMBDA = 10.0  # PTRS is exact for lam >= 10; a job whose lam is smaller is refused by the validator
_INV_2_53 = 1.0 / float(1 << 53)
_CHUNK = 1 << 16  # entries sampled together: every temporary of one PTRS round fits in L2
_LOG_FACTORIALS = np.array([math.lgamma(k + 1.0) for k in range(16)], dtype=np.float64)


def rounded_sensitivity(*, clip: float, scale: float, dimension: int) -> tuple[float, float]:
    """(L2, L1) sensitivity of one owner's encoded update in ring units: clip*scale + sqrt(d)/2, and its L1 bound."""
    l2 = clip * scale + math.sqrt(dimension) / 2.0
    return l2, min(math.sqrt(dimension) * l2, l2 * l2)


def total_variance(*, noise_multiplier: float, dp_clip: float, scale: float) -> float:
    """Per-coordinate noise variance of the sum of K owners' noise, in ring units: (sigma C gamma)^2."""
    return (noise_multiplier * dp_clip * scale) ** 2


def owner_variance(*, noise_multiplier: float, dp_clip: float, scale: float, min_contributors: int) -> float:
    """One owner's share: the total variance over K (the fewest inputs a round can be unmasked with)."""
    return total_variance(noise_multiplier=noise_multiplier, dp_clip=dp_clip, scale=scale) / min_contributors


def skellam_accounted_multiplier(
    *, noise_multiplier: float, dp_clip: float, clip: float, scale: float, dimension: int
) -> float:
    """The Gaussian noise multiplier whose RDP bounds the distributed Skellam round's (see the module doc)."""
    l2, l1 = rounded_sensitivity(clip=clip, scale=scale, dimension=dimension)
    variance = total_variance(noise_multiplier=noise_multiplier, dp_clip=dp_clip, scale=scale)
    return math.sqrt(variance / (l2 * l2 + 3.0 * l1))


class SkellamSource:
    """Symmetric Skellam variates from a ChaCha20 keystream (Poisson by PTRS)."""

    def __init__(self, *, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"ChaCha20 needs a 32-byte key, got {len(key)}")
        self._stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    @classmethod
    def from_urandom(cls) -> SkellamSource:
        """The production source: a fresh key from the OS CSPRNG, never stored."""
        return cls(key=os.urandom(32))

    def uniforms(self, count: int) -> F64:
        """`count` uniforms in [0, 1) with 53 bits each."""
        raw = self._stream.update(bytes(8 * count))
        words = np.frombuffer(raw, dtype="<u8", count=count)
        return (words >> np.uint64(11)).astype(np.float64) * _INV_2_53

    def poisson(self, lam: float, count: int) -> I64:
        """`count` independent Pois(lam) variates (lam >= MIN_LAMBDA)."""
        if not (math.isfinite(lam) and lam >= MIN_LAMBDA):
            raise ValueError(f"the Poisson sampler needs lam >= {MIN_LAMBDA:g}, got {lam!r}")
        out = np.empty(count, dtype=np.int64)
        for start in range(0, count, _CHUNK):  # chunks that stay in cache: 2-3x faster on 10M entries than one pass
            chunk = out[start : start + _CHUNK]
            pending = np.arange(chunk.size)
            while pending.size:
                accepted, values = _ptrs_attempt(lam, self.uniforms(pending.size), self.uniforms(pending.size))
                chunk[pending[accepted]] = values[accepted]
                pending = pending[~accepted]
        return out

    def skellam(self, lam: float, count: int) -> I64:
        """`count` independent Sk(lam, lam) variates: variance 2 lam."""
        return self.poisson(lam, count) - self.poisson(lam, count)


def _ptrs_attempt(lam: float, u_raw: F64, v: F64) -> tuple[npt.NDArray[np.bool_], I64]:
    """One round of PTRS for every pending entry: (accepted mask, candidate values)."""
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    u = u_raw - 0.5
    us = 0.5 - np.abs(u)
    us = np.maximum(us, 1e-300)  # u_raw = 0 gives us = 0: that draw falls in the rejected tail below
    k = np.floor((2.0 * a / us + b) * u + lam + 0.43)
    accepted = (us >= 0.07) & (v <= vr)
    # the exact test, only where the quick one did not accept (about one entry in seven): same decisions as
    # evaluating it everywhere, without the logarithms of the other six
    rest = np.flatnonzero(~accepted & (k >= 0) & ~((us < 0.013) & (v > us)))
    us_r, k_r = us[rest], k[rest]
    log_v = np.log(np.maximum(v[rest], 1e-300)) + math.log(invalpha) - np.log(a / (us_r * us_r) + b)
    accepted[rest] = log_v <= -lam + k_r * loglam - _log_factorial(k_r)
    return accepted, np.maximum(k, 0.0).astype(np.int64)


def _log_factorial(k: F64) -> F64:
    """log(k!) for non-negative integer-valued k: a table below 16, Stirling's series (error < 1e-13) above."""
    n = k + 1.0
    stirling: F64 = (n - 0.5) * np.log(n) - n + 0.5 * math.log(2.0 * math.pi) + 1.0 / (12.0 * n) - 1.0 / (360.0 * n**3)
    small = k < 16
    if np.any(small):
        stirling = np.where(small, _LOG_FACTORIALS[np.minimum(k, 15).astype(np.int64)], stirling)
    return stirling


def add_owner_noise_inplace(
    encoded: npt.NDArray[np.unsignedinteger[Any]], *, source: SkellamSource, variance: float
) -> None:
    """Add Sk(variance/2, variance/2) per coordinate to an encoded update, modulo 2^bits (before masking)."""
    noise = source.skellam(variance / 2.0, encoded.size)
    if encoded.dtype == np.uint64:
        encoded += noise.view(np.uint64)
    else:
        encoded += noise.astype(np.int32).view(np.uint32)

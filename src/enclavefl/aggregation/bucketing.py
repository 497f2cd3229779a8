"""Bucketing (Karimireddy, He, Jaggi, ICLR 2022): average random buckets of updates, then apply a robust rule.

Under label skew the honest updates disagree with each other, and a robust rule (median, trimmed mean, Krum)
fed with raw updates throws away or biases honest information. Averaging random buckets of `bucket_size`
updates first makes the honest inputs more alike (their spread shrinks about sqrt(s) times), at the price
of spreading an attacker into its bucket: with f attackers among n, at most f of the floor(n / s) bucket means
are contaminated, so the inner rule must tolerate f of floor(n / s) bad inputs (trimmed mean: beta >= f / buckets;
Krum: buckets >= 2f + 3). Buckets hold s or s + 1 updates (never fewer), so with s >= K a released bucket mean
still mixes K updates.

The partition is drawn at finalize, after the last update arrived, from a ChaCha20 keystream keyed with
32 fresh bytes of `os.urandom` per round, so no owner can know its bucket (or its bucket mates) in advance.
A fixed `key` (tests, reproducible demos) is combined with a per-round counter as the ChaCha20 nonce.
Memory: like the rule it wraps, the round HOLDS ALL n UPDATES (copied), then the bucket means.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from enclavefl.aggregation.base import AggregationStrategy, RoundAggregator, updates_behind_each_value
from enclavefl.aggregation.fedavg import FedAvg
from enclavefl.aggregation.robust import HeldUpdatesRound
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import JobSpecError

KEY_BYTES = 32


def bucket_count(updates: int, bucket_size: int) -> int:
    """floor(updates / bucket_size), at least 1: no bucket is smaller than bucket_size (K: ReleaseBelowK)."""
    return max(1, updates // bucket_size)


def random_permutation(n: int, *, key: bytes, nonce: int = 0) -> list[int]:
    """A permutation of range(n) from the ChaCha20 keystream of (key, nonce): sort by 64-bit random tags.

    Two equal tags (probability about n^2 / 2^65) would fall back to arrival order: negligible, not exploitable.
    """
    if len(key) != KEY_BYTES:
        raise ValueError(f"bucketing key must be {KEY_BYTES} bytes, got {len(key)}")
    if n < 0 or nonce < 0:
        raise ValueError("n and nonce must be >= 0")
    # cryptography's 16-byte ChaCha20 nonce: 4-byte block counter (starts at 0), then a 12-byte nonce
    stream = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce.to_bytes(12, "little")), mode=None).encryptor()
    tags = np.frombuffer(stream.update(bytes(8 * n)), dtype="<u8")
    return [int(i) for i in np.argsort(tags, kind="stable")]


def bucket_partition(n: int, bucket_size: int, *, key: bytes, nonce: int = 0) -> list[list[int]]:
    """Split indices 0..n-1 into floor(n / bucket_size) random buckets of bucket_size or bucket_size + 1.

    The remainder is spread over the first buckets rather than left as a small last bucket: a rule that may
    release one bucket's mean (the median of bucket means) then releases a mean of >= bucket_size updates,
    so bucket_size >= K keeps the K guarantee (core/release_check.py). Fewer than bucket_size updates: one bucket.
    """
    if bucket_size < 1:
        raise ValueError(f"bucket_size must be >= 1, got {bucket_size}")
    order = random_permutation(n, key=key, nonce=nonce)
    if n == 0:
        return []
    buckets = bucket_count(n, bucket_size)
    size, extra = divmod(n, buckets)
    out, start = [], 0
    for index in range(buckets):
        stop = start + size + (1 if index < extra else 0)
        out.append(order[start:stop])
        start = stop
    return out


class Bucketing:
    """Wraps a robust strategy: the inner rule sees the unweighted means of random buckets of updates."""

    def __init__(self, *, inner: AggregationStrategy, bucket_size: int = 2, key: bytes | None = None) -> None:
        if isinstance(bucket_size, bool) or not isinstance(bucket_size, int) or bucket_size < 1:
            raise JobSpecError(f"strategy.params.bucket_size: must be an integer >= 1, got {bucket_size!r}")
        if key is not None and len(key) != KEY_BYTES:
            raise ValueError(f"bucketing key must be {KEY_BYTES} bytes, got {len(key)}")
        self.inner = inner
        self.bucket_size = bucket_size
        self._key = key  # None: a fresh os.urandom key every round (production)
        self._rounds = 0

    @property
    def name(self) -> str:
        return "bucketing"

    @property
    def holds_all_updates(self) -> bool:
        return True

    def parameters(self) -> Mapping[str, object]:
        # the key is not a parameter: it is secret and, in production, fresh every round
        inner_params = dict(self.inner.parameters())
        return {"bucket_size": self.bucket_size, "inner": self.inner.name, "inner_params": inner_params}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        # n held updates + the bucket mean being built + the inner round over floor(n / s) bucket means
        buckets = bucket_count(updates, self.bucket_size)
        return (updates + 1) * model_bytes + self.inner.peak_memory_bytes(model_bytes=model_bytes, updates=buckets)

    def updates_behind_each_value(self, updates: int) -> int:
        buckets = bucket_count(updates, self.bucket_size)
        smallest_bucket = updates // buckets  # bucket sizes are s or s + 1 (bucket_partition)
        return smallest_bucket * updates_behind_each_value(self.inner, buckets)

    def start_round(self, global_model: ModelWeights) -> HeldUpdatesRound:
        if self._key is None:
            key, nonce = os.urandom(KEY_BYTES), 0
        else:
            key, nonce = self._key, self._rounds
        self._rounds += 1
        rule = bucketed_rule(
            global_model=global_model,
            inner=self.inner.start_round(global_model),
            bucket_size=self.bucket_size,
            key=key,
            nonce=nonce,
        )
        return HeldUpdatesRound(global_model=global_model, rule=rule)


def bucketed_rule(
    *, global_model: ModelWeights, inner: RoundAggregator, bucket_size: int, key: bytes, nonce: int
) -> Callable[[list[ModelWeights]], ModelWeights]:
    """The rule a HeldUpdatesRound applies at finalize: fold each random bucket's mean into the inner round."""

    def rule(held: list[ModelWeights]) -> ModelWeights:
        # drawn only now, when every update is in: nobody, the sender included, could aim at a bucket
        means = []
        for bucket in bucket_partition(len(held), bucket_size, key=key, nonce=nonce):
            mean = FedAvg(weighted=False).start_round(global_model)
            for index in bucket:
                mean.fold_inplace(held[index], weight=1.0)
            means.append((mean.finalize(), len(bucket)))
        held.clear()  # the inner rule works on the bucket means: release the n updates first
        for mean_weights, size in means:
            inner.fold_inplace(mean_weights, weight=float(size))
        return inner.finalize()

    return rule

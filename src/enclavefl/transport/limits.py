"""What one caller may take from the node: streams, held calls, watchers, and the rate of unauthenticated calls.

    gate = CallGate(NodeLimits())
    permit = gate.stream(peer_key, watch=True)   # NodeBusy (RESOURCE_EXHAUSTED) naming the limit when over it
    permit = gate.held(peer_key)                 # a call that waits: a long poll, an upload waiting for the seal
    ...; permit.release()                        # idempotent; the servicer ties it to the RPC's end
    gate.unauthenticated(connection)             # Attest / Challenge: a token bucket per connection and one global

Why: the node's calls hold no thread while they wait (transport/grpc_servicer.py), but each still costs memory:
a stream its receive window and a chunk in flight, a held call its parked coroutine and request. Measured before
these limits (issue 22), one enrolled party holding 160 Status long polls starved every other caller. So every
call that stays open is counted against its party (its name, not its address: a party may open many
connections) and against the node's total: streams (Watch, downloads, uploads while their bytes come in),
held calls (Status long polls, signatures waiting for the release, uploads waiting for a staging slot or the
seal) and, among streams, watchers. Unauthenticated calls cannot be tied to a party; they are keyed by
connection (the address the host reports is under the host's control anyway: per-address filtering belongs to
its firewall) and bounded overall, so a flood costs the node at most `unauthenticated_per_second_total` cheap
answers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from enclavefl.errors import ConfigError, NodeBusy

MAX_TRACKED_CONNECTIONS = 4096  # token buckets kept for unauthenticated callers (least recently used dropped)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLimits:
    """The node's limits; every field is a `node serve` option of the same name (dashes for underscores)."""

    max_streams_per_peer: int = 4  # concurrent Watch + model downloads + uploads of one authenticated party
    max_streams: int = 64  # all parties together (each may buffer a 256 KiB receive window and a chunk)
    max_held_per_peer: int = 8  # calls of one party waiting for the node (long polls, uploads, signatures)
    max_held: int = 4096  # all parties together (a parked call costs a few KiB: docs/performance.md)
    max_watchers_per_peer: int = 2  # Watch streams of one party (counted in its streams as well)
    max_watchers: int = 64  # Watch streams in total
    attest_per_second: float = 5.0  # Attest + Challenge calls per connection (sustained; bursts of twice this)
    attest_per_second_total: float = 200.0  # Attest + Challenge calls across all connections
    max_attest_in_flight: int = 4  # quotes being made at once; further Attest calls are refused, never queued
    session_lifetime_seconds: float = 12 * 3600.0  # a Join's session; the client joins again when it expires

    def __post_init__(self) -> None:
        for name in (
            "max_streams_per_peer",
            "max_streams",
            "max_held_per_peer",
            "max_held",
            "max_watchers_per_peer",
            "max_watchers",
            "max_attest_in_flight",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        for name in ("attest_per_second", "attest_per_second_total", "session_lifetime_seconds"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name}: must be a positive number, got {getattr(self, name)!r}")


class Permit:
    """One call's place in the counts; `release` (or the end of a `with` block) gives it back, once."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:  # however the block ends (a cancelled call included)
        self.release()


class _TokenBucket:
    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.capacity = rate, max(1.0, 2 * rate)
        self.tokens, self.stamp = self.capacity, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class CallGate:
    """Counts streams and unauthenticated calls against NodeLimits; every refusal is counted by limit name."""

    def __init__(self, limits: NodeLimits, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._streams: dict[str, int] = {}
        self._watchers: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._total_streams = self._total_watchers = self._total_held = self._attesting = 0
        self._buckets: OrderedDict[str, _TokenBucket] = OrderedDict()
        self._global_bucket = _TokenBucket(limits.attest_per_second_total, monotonic())
        self.refused: dict[str, int] = {}  # limit name -> refusals (benchmarks and tests read it)
        self.peak_streams: dict[str, int] = {}  # most streams each party held at once
        self.peak_watchers: dict[str, int] = {}
        self.peak_held: dict[str, int] = {}
        self.served_unauthenticated = 0

    def stream(self, peer: str, *, watch: bool = False) -> Permit:
        """A place for one more stream of `peer`; NodeBusy naming the first limit it would pass."""
        lim = self.limits
        with self._lock:
            if self._streams.get(peer, 0) >= lim.max_streams_per_peer:
                self._refuse("max_streams_per_peer", f"{peer} already has {lim.max_streams_per_peer} open stream(s)")
            if self._total_streams >= lim.max_streams:
                self._refuse("max_streams", f"the node serves {lim.max_streams} streams already")
            if watch and self._watchers.get(peer, 0) >= lim.max_watchers_per_peer:
                self._refuse("max_watchers_per_peer", f"{peer} already watches {lim.max_watchers_per_peer} time(s)")
            if watch and self._total_watchers >= lim.max_watchers:
                self._refuse("max_watchers", f"the node has {lim.max_watchers} watchers already")
            self._streams[peer] = self._streams.get(peer, 0) + 1
            self.peak_streams[peer] = max(self.peak_streams.get(peer, 0), self._streams[peer])
            self._total_streams += 1
            if watch:
                self._watchers[peer] = self._watchers.get(peer, 0) + 1
                self.peak_watchers[peer] = max(self.peak_watchers.get(peer, 0), self._watchers[peer])
                self._total_watchers += 1
        return Permit(lambda: self._end_stream(peer, watch))

    def held(self, peer: str) -> Permit:
        """A place for one more call of `peer` that waits for the node; NodeBusy naming the limit it would pass."""
        lim = self.limits
        with self._lock:
            if self._held.get(peer, 0) >= lim.max_held_per_peer:
                self._refuse("max_held_per_peer", f"{peer} already has {lim.max_held_per_peer} waiting call(s)")
            if self._total_held >= lim.max_held:
                self._refuse("max_held", f"the node holds {lim.max_held} waiting calls already")
            self._held[peer] = self._held.get(peer, 0) + 1
            self.peak_held[peer] = max(self.peak_held.get(peer, 0), self._held[peer])
            self._total_held += 1
        return Permit(lambda: self._end_held(peer))

    @property
    def held_now(self) -> int:
        """Calls waiting for the node right now (tests and benchmarks read it)."""
        with self._lock:
            return self._total_held

    def unauthenticated(self, connection: str) -> None:
        """Admit one Attest or Challenge call from `connection`; NodeBusy when it or everyone calls too often."""
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.pop(connection, None) or _TokenBucket(self.limits.attest_per_second, now)
            self._buckets[connection] = bucket  # most recently used last
            if len(self._buckets) > MAX_TRACKED_CONNECTIONS:
                self._buckets.popitem(last=False)
            if not bucket.take(now):
                self._refuse("attest_per_second", f"this connection calls more than {bucket.rate:g} times a second")
            if not self._global_bucket.take(now):
                self._refuse("attest_per_second_total", f"the node answers {self._global_bucket.rate:g} per second")
            self.served_unauthenticated += 1

    def attesting(self) -> Permit:
        """A place to make one quote; NodeBusy (never a queue: quotes are the costly open call) when all are taken."""
        with self._lock:
            if self._attesting >= self.limits.max_attest_in_flight:
                self._refuse("max_attest_in_flight", f"{self.limits.max_attest_in_flight} quotes are being made")
            self._attesting += 1
        return Permit(self._end_attest)

    def _end_stream(self, peer: str, watch: bool) -> None:
        with self._lock:
            self._total_streams -= 1
            if self._streams[peer] <= 1:
                del self._streams[peer]
            else:
                self._streams[peer] -= 1
            if watch:
                self._total_watchers -= 1
                if self._watchers[peer] <= 1:
                    del self._watchers[peer]
                else:
                    self._watchers[peer] -= 1

    def _end_held(self, peer: str) -> None:
        with self._lock:
            self._total_held -= 1
            if self._held[peer] <= 1:
                del self._held[peer]
            else:
                self._held[peer] -= 1

    def _end_attest(self) -> None:
        with self._lock:
            self._attesting -= 1

    def _refuse(self, limit: str, why: str) -> None:
        self.refused[limit] = self.refused.get(limit, 0) + 1
        option = "--" + limit.replace("_", "-")
        raise NodeBusy(f"node limit {limit} ({option}): {why}; retry later")

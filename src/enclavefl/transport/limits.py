"""What one caller may take from the node: concurrent streams, watchers, and the rate of unauthenticated calls.

    gate = CallGate(NodeLimits())
    permit = gate.stream(peer_key, watch=True)   # NodeBusy (RESOURCE_EXHAUSTED) naming the limit when over it
    ...; permit.release()                        # idempotent; the servicer ties it to the RPC's end
    gate.unauthenticated(connection)             # Attest / Challenge: a token bucket per connection and one global

Why: every stream holds one of the server's RPC threads for as long as it lasts. Measured before these limits,
one enrolled party opening 32 Watch streams took every thread, and other owners' Status and an unauthenticated
Attest hit their deadlines. Streams are therefore counted per authenticated party (its name, not its address:
a party may open many connections) and in total, the total kept below the thread pool so short calls always
find a thread. Unauthenticated calls cannot be tied to a party; they are keyed by connection (the address the
host reports is under the host's control anyway: per-address filtering belongs to its firewall) and bounded
overall, so a flood costs the node at most `unauthenticated_per_second_total` cheap answers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from enclavefl.errors import ConfigError, NodeBusy

MAX_TRACKED_CONNECTIONS = 4096  # token buckets kept for unauthenticated callers (least recently used dropped)
DEFAULT_RPC_THREADS = 32  # the node's gRPC thread pool unless told otherwise (AggregatorNode max_workers)
THREADS_KEPT_FOR_SHORT_CALLS = 8  # RPC threads no stream may take (default max_streams: threads minus these)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLimits:
    """The node's limits; every field is a `node serve` option of the same name (dashes for underscores)."""

    max_streams_per_peer: int = 4  # concurrent Watch + model downloads + uploads of one authenticated party
    max_streams: int | None = None  # all parties together; None: the RPC threads minus 8 (short calls keep some)
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
            "max_watchers_per_peer",
            "max_watchers",
            "max_attest_in_flight",
        ):
            value = getattr(self, name)
            if name == "max_streams" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        for name in ("attest_per_second", "attest_per_second_total", "session_lifetime_seconds"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name}: must be a positive number, got {getattr(self, name)!r}")

    def for_threads(self, rpc_threads: int) -> NodeLimits:
        """These limits on a server of `rpc_threads`: max_streams filled in, or ConfigError if it leaves none over."""
        if self.max_streams is None:  # half the threads at most are kept back on tiny pools
            kept = min(THREADS_KEPT_FOR_SHORT_CALLS, rpc_threads // 2)
            return replace(self, max_streams=max(1, rpc_threads - kept))
        streams = self.max_streams
        if not 1 <= streams < rpc_threads:
            raise ConfigError(
                f"max_streams ({streams}) must be from 1 to below the {rpc_threads} RPC threads: short calls "
                "(Status, Attest, Acknowledge) need threads that no stream holds"
            )
        return replace(self, max_streams=streams)


class Permit:
    """One stream's place in the counts; `release` gives it back (once, however often it is called)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()


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
        self.limits = limits if limits.max_streams is not None else limits.for_threads(DEFAULT_RPC_THREADS)
        self._max_streams = self.limits.max_streams or 1  # set by for_threads
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._streams: dict[str, int] = {}
        self._watchers: dict[str, int] = {}
        self._total_streams = self._total_watchers = self._attesting = 0
        self._buckets: OrderedDict[str, _TokenBucket] = OrderedDict()
        self._global_bucket = _TokenBucket(limits.attest_per_second_total, monotonic())
        self.refused: dict[str, int] = {}  # limit name -> refusals (benchmarks and tests read it)
        self.peak_streams: dict[str, int] = {}  # most streams each party held at once
        self.peak_watchers: dict[str, int] = {}
        self.served_unauthenticated = 0

    def stream(self, peer: str, *, watch: bool = False) -> Permit:
        """A place for one more stream of `peer`; NodeBusy naming the first limit it would pass."""
        lim = self.limits
        with self._lock:
            if self._streams.get(peer, 0) >= lim.max_streams_per_peer:
                self._refuse("max_streams_per_peer", f"{peer} already has {lim.max_streams_per_peer} open stream(s)")
            if self._total_streams >= self._max_streams:
                self._refuse("max_streams", f"the node serves {self._max_streams} streams already")
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
        """A place to make one quote; NodeBusy (not a wait: a waiting call would hold a thread) when all are taken."""
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

    def _end_attest(self) -> None:
        with self._lock:
            self._attesting -= 1

    def _refuse(self, limit: str, why: str) -> None:
        self.refused[limit] = self.refused.get(limit, 0) + 1
        option = "--" + limit.replace("_", "-")
        raise NodeBusy(f"node limit {limit} ({option}): {why}; retry later")

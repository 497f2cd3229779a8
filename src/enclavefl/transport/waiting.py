"""Waiting without a thread, and waking only the calls whose answer changed: the node's status on an event loop.

    board = StatusBoard(loop, read=read_shared_status, stopped=lambda: node.stopped)   # on the server's loop
    node.on_status_change(board.changed)              # the node calls it from any thread, under its lock
    view = seen.round_view()
    status = await board.until(("view", view), lambda s: s.round_view() != view, timeout=5.0)

Every Status long poll, Watch stream, upload waiting for the seal and signer waiting for the release parks here as
a coroutine (no thread). Waiters are grouped by what they wait for (`key`: e.g. "the round view differs from this
one", "round 7 released and the next one opened"), and one group shares one readiness test. A change is read once
(one status read on the node's pool, whatever the number of waiters); only the groups whose test now holds are
woken, each waiter exactly once, with the status that woke it. A change that answers nobody (a status message, a
release while signers wait for the next opening) wakes no call at all, so a round costs each waiting owner one
wake-up, not one per change (docs/performance.md, "Many owners"). `parked`, `reparked`, `wakeups` and `reads`
count it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
S = TypeVar("S")


@dataclass(slots=True)
class _Group(Generic[S]):
    ready: Callable[[S], bool]
    waiters: set[asyncio.Future[S | None]] = field(default_factory=set)


class StatusBoard(Generic[S]):
    """The latest status read after the node's last change, and the calls parked until it says what they wait for."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, read: Callable[[], Awaitable[S]], stopped: Callable[[], bool]
    ) -> None:
        self._loop = loop
        self._read = read
        self._stopped = stopped
        self._groups: dict[Hashable, _Group[S]] = {}
        self._latest: S | None = None
        self._scheduled = False  # a change is on its way to the loop: later ones until then are the same one
        self._reading = False  # a read is in flight (its loop reads again if a change came meanwhile)
        self._reader: asyncio.Task[None] | None = None  # the read in flight, held (see _start_reading)
        self._dirty = False
        self._settled: asyncio.Future[None] = loop.create_future()
        self.changes = 0  # changes that reached the loop (several told together count once)
        self.reads = 0  # status reads (one per change, however many calls wait)
        self.parked = 0  # times a call parked (a call woken for nothing would park again: tests count this)
        self.wakeups = 0  # parked calls woken because what they wait for happened (not their timeouts)
        self.reparked = 0  # calls that parked again after a wake-up that did not answer them (the herd: none)

    @property
    def waiting(self) -> int:
        return sum(len(group.waiters) for group in self._groups.values())

    def changed(self) -> None:
        """Something changed (any thread; never blocks). Changes that arrive together are read once."""
        if self._scheduled:
            return
        self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped, nobody waits
            self._loop.call_soon_threadsafe(self._arrived)

    async def current(self) -> S:
        """The latest status read. It may predate a change still being read: a call that parks on it then is
        woken by that read if it answers it, so nothing is missed, and nobody waits for a quiet moment."""
        if self._latest is None:
            if not (self._reading or self._scheduled):
                self._start_reading()
            while self._reading or self._scheduled:
                await asyncio.shield(self._settled)
        if self._latest is None:  # the shared read failed: this caller's own read raises the error to it
            return await self._read()
        return self._latest

    async def until(self, key: Hashable, ready: Callable[[S], bool], timeout: float) -> S:
        """The first status for which `ready` holds (or the node stopped), or the current one after `timeout`.

        Every waiter with the same `key` must pass the same test (it is evaluated once per group and change).
        """
        deadline = self._loop.time() + max(timeout, 0.0)
        parks = 0
        while True:
            status = await self.current()  # then parked with no await in between: no change is missed
            remaining = deadline - self._loop.time()
            if ready(status) or self._stopped() or remaining <= 0:
                return status
            parks += 1
            self.reparked += parks > 1
            woke = await self._park(key, ready, remaining)
            if woke is not None:
                return woke

    async def _park(self, key: Hashable, ready: Callable[[S], bool], timeout: float) -> S | None:
        waiter: asyncio.Future[S | None] = self._loop.create_future()
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(ready)
        group.waiters.add(waiter)
        self.parked += 1
        timer = self._loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            group.waiters.discard(waiter)
            if not group.waiters and self._groups.get(key) is group:
                del self._groups[key]

    def _arrived(self) -> None:
        self._scheduled = False
        self.changes += 1
        if self._reading:
            self._dirty = True  # the read in flight may have missed it: its loop reads again
        else:
            self._start_reading()

    def _start_reading(self) -> None:
        self._reading = True
        # Held: the loop keeps only a weak reference to a task, and a collected one would never wake its waiters.
        self._reader = self._loop.create_task(self._read_and_wake())

    async def _read_and_wake(self) -> None:
        try:
            while True:
                self._dirty = False
                try:
                    status = await self._read()
                except Exception:  # the waiters find out themselves (each reads on its own once it times out)
                    log.exception("reading the node's status for waiting calls failed")
                    self._latest = None
                    self._wake_all()
                    return
                self.reads += 1
                self._latest = status
                self._wake(status)
                if not self._dirty:
                    return
        finally:
            self._reading = False
            settled, self._settled = self._settled, self._loop.create_future()
            settled.set_result(None)

    def _wake(self, status: S) -> None:
        stopped = self._stopped()
        for key, group in list(self._groups.items()):
            if stopped or group.ready(status):
                del self._groups[key]
                for waiter in group.waiters:
                    if not waiter.done():
                        waiter.set_result(status)
                        self.wakeups += 1

    def _wake_all(self) -> None:
        groups, self._groups = self._groups, {}
        for group in groups.values():
            for waiter in group.waiters:
                if not waiter.done():
                    waiter.set_result(None)


def _expire(waiter: asyncio.Future[S | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

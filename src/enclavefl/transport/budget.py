"""A byte budget shared by every stream of one direction: how much the node holds in flight, whatever the count.

    budget = ByteBudget(4 << 20)                     # created and used on the server's event loop
    async with budget.hold(2 * len(piece), wait_at_most=2.0):
        yield piece                                  # one chunk (and gRPC's copy of it) in flight

Ten owners downloading a 40 MB model at once would otherwise each hold a serialized chunk (plus gRPC's copy of
it) at the same moment; with a budget, streams take turns per chunk and the node's transfer buffers stay under
a fixed number of bytes however many callers there are (docs/performance.md, "Node memory"). A stream waiting
for its turn is parked on the event loop: it holds no thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ByteBudget:
    """A counting semaphore in bytes, for one event loop. A request larger than the whole budget waits until it is
    alone."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a byte budget must be at least 1 byte, got {total}")
        self.total = total
        self._available = total
        self._cond = asyncio.Condition()
        self.peak_in_use = 0  # the most ever held at once (tests and benchmarks read it)
        self.overdrafts = 0  # holds that went ahead without room after waiting `wait_at_most`

    @property
    def in_use(self) -> int:
        return self.total - self._available

    @asynccontextmanager
    async def hold(self, nbytes: int, *, wait_at_most: float | None = None) -> AsyncIterator[None]:
        """Hold `nbytes` (capped at the total) for the body of the `async with`; waits until they are free.

        With `wait_at_most`, goes ahead after that many seconds even without room (and counts the overdraft in
        `overdrafts`): a holder that never lets go (a peer that stops reading its download) then slows the
        others down but cannot stop them.
        """
        take = min(max(nbytes, 0), self.total)
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: self._available >= take), wait_at_most)
            except TimeoutError:
                self.overdrafts += 1
            self._available -= take
            self.peak_in_use = max(self.peak_in_use, self.total - self._available)
        try:
            yield
        finally:
            async with self._cond:
                self._available += take
                self._cond.notify_all()

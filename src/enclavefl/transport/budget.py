"""A byte budget shared by every stream of one direction: how much the node holds in flight, whatever the count.

Ten owners downloading a 40 MB model at once would otherwise each hold a serialized chunk (plus gRPC's copy of
it) at the same moment; with a budget, streams take turns per chunk and the node's transfer buffers stay under
a fixed number of bytes however many callers there are (docs/performance.md, "Node memory").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class ByteBudget:
    """A counting semaphore in bytes. A request larger than the whole budget waits until it is alone."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a byte budget must be at least 1 byte, got {total}")
        self.total = total
        self._available = total
        self._cond = threading.Condition()
        self.peak_in_use = 0  # the most ever held at once (tests and benchmarks read it)
        self.overdrafts = 0  # holds that went ahead without room after waiting `wait_at_most`

    @property
    def in_use(self) -> int:
        with self._cond:
            return self.total - self._available

    @contextmanager
    def hold(self, nbytes: int, *, wait_at_most: float | None = None) -> Iterator[None]:
        """Hold `nbytes` (capped at the total) for the body of the `with`; waits until they are free.

        With `wait_at_most`, goes ahead after that many seconds even without room (and counts the overdraft in
        `overdrafts`): a holder that never lets go (a peer that stops reading its download) then slows the
        others down but cannot stop them.
        """
        take = min(max(nbytes, 0), self.total)
        with self._cond:
            deadline = None if wait_at_most is None else time.monotonic() + wait_at_most
            while self._available < take:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.overdrafts += 1
                    break
                self._cond.wait(remaining)
            self._available -= take
            self.peak_in_use = max(self.peak_in_use, self.total - self._available)
        try:
            yield
        finally:
            with self._cond:
                self._available += take
                self._cond.notify_all()

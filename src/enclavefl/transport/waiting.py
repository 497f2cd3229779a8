"""Waiting without a thread: the node's status changes (told from its threads) as awaitables on an event loop.

    changes = ChangeSignal(asyncio.get_running_loop())   # on the server's loop
    node.on_status_change(changes.changed)               # the node calls it from any thread, under its lock
    change = changes.next()                              # take it *before* reading the status: no lost wake-up
    status = await read_status()
    if status is unchanged: await changes.wait(change, timeout=remaining)

Every Status long poll, Watch stream and upload waiting for the seal parks on the same future; a change resolves
it and makes the next one, so a thousand waiting owners cost a thousand parked coroutines, not a thousand threads
(docs/performance.md, "Many owners").
"""

from __future__ import annotations

import asyncio
import contextlib


class ChangeSignal:
    """One future per status change, resolved when the node says something changed; for one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()
        self._scheduled = False  # a change already on its way to the loop: later ones until then are the same one
        self.changes = 0  # how many changes reached the loop (tests read it)

    def changed(self) -> None:
        """Something changed (any thread; never blocks). Changes that arrive together wake the waiters once."""
        if self._scheduled:
            return
        self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped, nobody waits
            self._loop.call_soon_threadsafe(self._resolve)

    def next(self) -> asyncio.Future[None]:
        """The future the next change resolves (on the loop)."""
        return self._future

    async def wait(self, change: asyncio.Future[None], timeout: float) -> None:
        """Until `change` happened or `timeout` seconds passed, whichever is first."""
        if change.done() or timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(change), timeout)

    def _resolve(self) -> None:
        self._scheduled = False
        self.changes += 1
        done, self._future = self._future, self._loop.create_future()
        if not done.done():
            done.set_result(None)

"""Issue 25 item 2: a change of the node's status wakes only the parked calls whose answer changed, each once.

A thousand owners park their calls on the node's status (long polls, uploads waiting for the seal, signers waiting
for the next round). If every change woke every parked call to look at the status and park again, a round would
cost the node O(owners x changes) wake-ups and grow per owner with the number of owners. These tests count, on the
real StatusBoard (transport/waiting.py), status reads and wake-ups against parked calls; then, over real gRPC and
TLS, that every waiting call of a whole job parks at most once and is woken at most once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from transport_harness import Federation, update

from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
from enclavefl.transport.api import JobState

pytestmark = pytest.mark.filterwarnings("ignore")
WAITERS = 200


@dataclass(frozen=True)
class View:
    round: int
    phase: str
    released: int
    note: str = ""  # changes that answer nobody (like a status message)


class FakeNode:
    """A status that a test changes, read the way the servicer reads the node's (on a thread, counted)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from enclavefl.transport.waiting import StatusBoard

        self.view = View(round=1, phase="open", released=0)
        self.board: StatusBoard[View] = StatusBoard(loop, read=self._read, stopped=lambda: False)

    async def _read(self) -> View:
        return await asyncio.to_thread(lambda: self.view)

    def change(self, view: View) -> None:
        self.view = view
        threading.Thread(target=self.board.changed).start()  # told from another thread, as the node does


async def _settle(node: FakeNode) -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not (node.board._reading or node.board._scheduled):
            return


async def _park_all(node: FakeNode, key: object, ready: Callable[[View], bool]) -> list[asyncio.Task[View]]:
    tasks = [asyncio.create_task(node.board.until(key, ready, timeout=30.0)) for _ in range(WAITERS)]
    while node.board.waiting < WAITERS:
        await asyncio.sleep(0.01)
    return tasks


def test_changes_that_answer_nobody_wake_no_parked_call_and_are_read_once() -> None:
    async def scenario() -> None:
        node = FakeNode(asyncio.get_running_loop())
        seen = node.view
        tasks = await _park_all(node, ("view", seen), lambda s: (s.round, s.phase) != (seen.round, seen.phase))
        reads_before = node.board.reads

        for i in range(10):  # uploads landing, messages changing: the view the waiters act on stays put
            node.change(View(round=1, phase="open", released=0, note=f"upload {i}"))
            await _settle(node)

        assert node.board.wakeups == 0
        assert node.board.waiting == WAITERS
        assert node.board.reads - reads_before <= 10  # one read per change, not one per parked call

        node.change(View(round=1, phase="signing", released=0))  # sealed: every waiter's answer changed
        answers = await asyncio.gather(*tasks)

        assert node.board.wakeups == WAITERS  # each woken exactly once
        assert node.board.parked == WAITERS and node.board.reparked == 0  # and none parked again
        assert {a.phase for a in answers} == {"signing"}

    asyncio.run(scenario())


def test_signers_sleep_through_the_release_and_wake_once_at_the_next_opening() -> None:
    async def scenario() -> None:
        node = FakeNode(asyncio.get_running_loop())
        node.view = View(round=1, phase="signing", released=0)
        tasks = await _park_all(node, ("signed", 1), lambda s: s.released >= 1 and s.phase != "waiting")

        node.change(View(round=1, phase="waiting", released=1))  # released; the next round is not open yet
        await _settle(node)
        assert node.board.wakeups == 0

        node.change(View(round=2, phase="open", released=1))
        answers = await asyncio.gather(*tasks)

        assert node.board.wakeups == WAITERS and node.board.parked == WAITERS
        assert {(a.round, a.phase) for a in answers} == {(2, "open")}

    asyncio.run(scenario())


def test_a_change_during_the_read_is_not_lost() -> None:
    async def scenario() -> None:
        node = FakeNode(asyncio.get_running_loop())
        release = threading.Event()
        first_read = True

        async def slow_read() -> View:
            nonlocal first_read
            view = node.view
            if first_read:  # this read took its value before the change below: it must be read again
                first_read = False
                await asyncio.to_thread(release.wait, 5.0)
            return view

        node.board._read = slow_read  # type: ignore[method-assign]
        node.change(View(round=1, phase="open", released=0, note="a change"))
        await asyncio.sleep(0.05)  # its read is in flight
        waiter = asyncio.create_task(node.board.until(("view", 1), lambda s: s.phase == "signing", timeout=5.0))
        node.change(View(round=1, phase="signing", released=0))
        release.set()

        assert (await asyncio.wait_for(waiter, 4.0)).phase == "signing"

    asyncio.run(scenario())


def test_every_waiting_call_of_a_job_parks_at_most_once_over_grpc(
    federation_factory: Callable[..., Federation],
) -> None:
    fed = federation_factory(min_contributions=3, rounds=3)
    node = fed.node()
    owners = {name: fed.connect(node, name) for name in ("alice", "bob", "carol")}
    waiting_calls = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        attested = owners[name]
        client, key = attested.client, attested.signing_key
        assert key is not None
        try:
            status = client.node_status()
            for r in range(1, fed.job.rounds + 1):
                while not (status.phase is RoundPhase.OPEN and status.round == r):
                    with lock:
                        waiting_calls[0] += 1
                    status = client.node_status(seen=status, wait_seconds=5.0)
                status = client.upload_for_status(update(name, r, 1.0), wait_seconds=5.0) or client.node_status()
                while status.rounds_completed < r and status.phase is not RoundPhase.SIGNING:
                    with lock:
                        waiting_calls[0] += 1
                    status = client.node_status(seen=status, wait_seconds=5.0)
                pending = status.pending or client.pending_receipt()
                verify_receipt(pending, attested.node_public_key_pem)
                status = client.acknowledge_for_status(sign_acknowledgement(key, owner=name, receipt=pending))
                assert status is not None
                with lock:
                    waiting_calls[0] += 2  # the upload waited for the seal, the signature for the next round
        except BaseException as exc:
            errors.append(exc)

    def chatter(done: threading.Event) -> None:  # status changes that answer nobody (as a status message would)
        while not done.wait(0.005):
            node._signals.notify()

    done = threading.Event()
    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in owners]
    for thread in [*threads, threading.Thread(target=chatter, args=(done,), daemon=True)]:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    assert not errors, errors
    assert node.wait(10).job_state is JobState.FINISHED
    assert node.server is not None
    board = node.server.servicer.board

    assert board.parked <= waiting_calls[0]
    assert board.reparked == 0  # no call was woken for nothing (the release alone answers no signer)
    assert board.wakeups <= board.parked
    assert board.reads <= board.changes + 1  # one status read per change (however many calls wait), plus the first
    # the chatter was heard (more changes than the job's own: start, then open, seal, release per round), and every
    # one of its changes woke nobody
    assert board.changes > 1 + 3 * fed.job.rounds


def test_stopping_the_server_ends_a_status_read_still_in_flight() -> None:
    """The server's stop cancels what is pending on its loop, so no task is destroyed pending at the loop's close."""
    from enclavefl.transport.grpc_server import _cancel_other_tasks

    async def scenario() -> bool:
        node = FakeNode(asyncio.get_running_loop())
        never: asyncio.Future[View] = asyncio.get_running_loop().create_future()

        async def stuck_read() -> View:
            return await never

        node.board._read = stuck_read  # type: ignore[method-assign]
        node.change(View(round=1, phase="open", released=0, note="a change"))
        for _ in range(100):
            if node.board._reader is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        reader = node.board._reader
        assert reader is not None and not reader.done()  # the read is in flight
        await _cancel_other_tasks()
        return reader.cancelled()  # asked here: asyncio.run would cancel it too, but only after the loop's work

    assert asyncio.run(scenario())

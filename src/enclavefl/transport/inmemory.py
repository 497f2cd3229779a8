"""The in-memory transport: a party's connection to a node in the same process, with the network's boundaries.

    client = InMemoryClient(node, caller="alice")     # a data owner's connection (caller "": the model owner)
    client.upload_for_status(message, wait_seconds=2.0)

It makes the calls the gRPC servicer makes (transport/grpc_servicer.py) on the same NodeService, so a simulation
runs the node's own code paths. Every mutable buffer is copied across the boundary, as the network would, so no
party shares an array with another. The caller's name stands for the authenticated session: a simulation enrols
its owners itself, so there is no join; the calls a role may not make are refused as the gRPC server refuses them.
A stopped node is unreachable (ProtocolError), as over a network. The node answers every call at once; a call that
waits (a long poll, an upload waiting for the seal, a signer waiting for the release) waits here, in the caller's
thread, woken by the node's status changes (the gRPC server parks its waiting calls the same way: transport/waiting.py).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.errors import NotEnrolled, ProtocolError
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.service import NodeService

T = TypeVar("T")
WATCH_POLL_SECONDS = 0.5
STATUS_WAIT_MAX_SECONDS = 5.0  # the longest a status long poll is held, whatever the caller asks
ACK_WAIT_SECONDS = 1.0  # bounded: an in-process signer waits this long for the release and the next opening


class InMemoryClient:
    """A NodeConnection (transport/connection.py) to a node object in this process."""

    def __init__(self, node: NodeService, *, caller: str = "") -> None:
        self._node = node
        self._changes = _changes_of(node)
        self._caller = caller  # a data owner's name; "" is the model owner
        self._closed = False
        self.pinned_spki_sha256 = node.channel_spki_sha256  # the key the "channel" is bound to: the node's own
        self.bytes_sent = 0
        self.bytes_received = 0

    def close(self) -> None:
        self._closed = True

    def attest(self, nonce: bytes) -> AttestationBundle:
        return self._reach().attest(bytes(nonce))

    def node_status(self, *, seen: NodeStatus | None = None, wait_seconds: float = 0.0) -> NodeStatus:
        node = self._reach()
        if seen is None or wait_seconds <= 0:
            return node.node_status(data_owner=bool(self._caller), caller=self._caller)
        return self._status_after(node, seen, wait_seconds)

    def global_model_bytes(self, round_index: int) -> ModelBytes:
        data = bytes(self._reach(data_owner=True).global_model_bytes(round_index))
        self.bytes_received += len(data)
        return data

    def upload_update(self, message: UpdateMessage) -> bytes:
        node = self._reach(data_owner=True)
        payload = bytes(bytearray(message.payload))  # the node never sees the owner's own buffer
        self.bytes_sent += len(payload)
        update = dataclasses.replace(message, payload=payload).incoming(owner=self._caller)
        return node.submit_update(update)

    def upload_for_status(self, message: UpdateMessage, *, wait_seconds: float) -> NodeStatus | None:
        found = self._reach(data_owner=True).node_status()  # the round as this upload found it
        self.upload_update(message)
        return self._status_after(self._reach(), found, wait_seconds)

    def receipts(self) -> tuple[SignedReceipt, ...]:
        return tuple(_copied(r) for r in self._reach().receipts(caller=self._caller))

    def pending_receipt(self) -> SignedReceipt:
        return _copied(self._reach(data_owner=True).pending_receipt())

    def acknowledge(self, ack: Acknowledgement) -> None:
        self.acknowledge_for_status(ack)

    def acknowledge_for_status(self, ack: Acknowledgement) -> NodeStatus | None:
        """Sign, then wait (at most ACK_WAIT_SECONDS) for the release and the next opening: the owner acts on the next
        round at once, without asking again."""
        node = self._reach(data_owner=True)
        ack = dataclasses.replace(ack, owner=self._caller, signature=bytes(ack.signature))
        status = node.acknowledge(ack)
        if _released(status, ack.round) or node.stopped:
            return status
        self._changes.until(node.node_status, lambda s: _released(s, ack.round) or node.stopped, ACK_WAIT_SECONDS)
        return node.acknowledge_settled(ack)

    def masking_step(self, *, round_index: int, step: str, body: bytes = b"") -> tuple[bool, bytes]:
        node = self._reach(data_owner=True)
        return node.masking_step(owner=self._caller, round_index=round_index, step=step, body=bytes(body))

    def submit_initial_model(self, payload: bytes) -> str:
        if self._caller:
            raise NotEnrolled("this call is for the model-owner")
        return self._reach().submit_initial_model(bytes(payload))

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]:
        """Round summaries as rounds close, until the job ends."""
        after = after_round
        while True:
            read = functools.partial(self._reach().summaries_after, after)
            summaries, ended = self._changes.until(read, lambda got: bool(got[0]) or got[1], WATCH_POLL_SECONDS)
            for summary in summaries:
                after = summary.round
                yield summary
            if ended:
                return

    def final_model_bytes(self) -> ModelBytes:
        data = bytes(self._reach().final_model_bytes())
        self.bytes_received += len(data)
        return data

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        data = bytes(self._reach().released_model_bytes(round_index))
        self.bytes_received += len(data)
        return data

    def _status_after(self, node: NodeService, seen: NodeStatus, wait_seconds: float) -> NodeStatus:
        """The status once its round view differs from `seen`'s (what goes over the wire: round, phase, attempt,
        released rounds, job state), or after `wait_seconds` (at most STATUS_WAIT_MAX_SECONDS)."""
        view = seen.round_view()
        return self._changes.until(
            lambda: node.node_status(data_owner=bool(self._caller), caller=self._caller),
            lambda status: status.round_view() != view or node.stopped,
            min(wait_seconds, STATUS_WAIT_MAX_SECONDS),
        )

    def _reach(self, *, data_owner: bool = False) -> NodeService:
        if self._closed:
            raise ProtocolError("this connection to the node is closed")
        if self._node.stopped:
            raise ProtocolError("the node is unreachable: it stopped")
        if data_owner and not self._caller:
            raise NotEnrolled("this call is for the data-owner")
        return self._node


def _copied(signed: SignedReceipt) -> SignedReceipt:
    return SignedReceipt.parse(bytes(signed.body), bytes(signed.signature))


def _released(status: NodeStatus, after: int) -> bool:
    """A signer's wait is over: its round was released and the next one opened (or the job ended)."""
    ended = status.job_state in (JobState.FINISHED, JobState.FAILED)
    return status.rounds_completed >= after and (status.phase is not RoundPhase.WAITING or ended)


class _Changes:
    """The node's status changes (NodeService.on_status_change), for the in-process calls that wait for one."""

    def __init__(self, node: NodeService) -> None:
        self._cond = threading.Condition()
        self._count = 0
        node.on_status_change(self._changed)

    def _changed(self) -> None:  # called under the node's lock: this lock is only ever held for a moment
        with self._cond:
            self._count += 1
            self._cond.notify_all()

    def until(self, read: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
        """`read()` as soon as `done` holds of it, or after `timeout` seconds (the last read then). `read` runs
        without this lock held: the node takes its own."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._cond:
                count = self._count
            value = read()
            remaining = deadline - time.monotonic()
            if done(value) or remaining <= 0:
                return value
            with self._cond:
                if self._count == count:  # no change since the read: wait for one
                    self._cond.wait(remaining)


_CHANGES: weakref.WeakKeyDictionary[NodeService, _Changes] = weakref.WeakKeyDictionary()
_CHANGES_LOCK = threading.Lock()


def _changes_of(node: NodeService) -> _Changes:
    """One listener per node, shared by its in-memory clients (a node keeps every listener it is given)."""
    with _CHANGES_LOCK:
        changes = _CHANGES.get(node)
        if changes is None:
            changes = _CHANGES[node] = _Changes(node)
        return changes

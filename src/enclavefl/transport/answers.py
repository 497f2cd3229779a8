"""Answers that carry the node's status, serialized once however many calls they answer.

    answers = StatusAnswers()
    return answers.status(status)                    # Status: a pb.NodeStatus's wire bytes
    return answers.upload(round_index=3, status=s)   # UploadAck of an upload that waited for the seal
    return answers.acknowledged(status)              # AcknowledgeAck

At a seal every waiting owner is answered with one status carrying the round's receipt, O(N) bytes (67 KB at 1,000
owners). Built per call, N answers held N copies of it at once (docs/performance.md, "Many owners"); here every
call answered with a status, or an equal one, gets the same bytes object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from enclavefl.transport import wire
from enclavefl.transport.api import NodeStatus
from enclavefl.transport.proto import enclavefl_pb2 as pb


def serialize(answer: Any) -> bytes:
    """gRPC's response serializer: a message, or the bytes of one already serialized (no copy)."""
    return answer if isinstance(answer, bytes) else bytes(answer.SerializeToString())


class StatusAnswers:
    """The last status answered and its answers' wire bytes (used on the server's event loop only)."""

    def __init__(self) -> None:
        self._status: NodeStatus | None = None
        self._message = pb.NodeStatus()
        self._answers: dict[object, bytes] = {}
        self.serialized = 0  # statuses serialized (tests: one per distinct status, not one per call)

    def status(self, status: NodeStatus) -> bytes:
        return self._answer("status", status, lambda m: m)

    def upload(self, *, round_index: int, status: NodeStatus) -> bytes:
        """A waiting upload's answer: its round and the status, not the payload's hash (which the owner computed
        itself; an upload that does not wait gets it), so every upload of the round gets the same bytes."""
        return self._answer(("upload", round_index), status, lambda m: pb.UploadAck(round=round_index, status=m))

    def acknowledged(self, status: NodeStatus) -> bytes:
        return self._answer("acknowledged", status, lambda m: pb.AcknowledgeAck(status=m))

    def _answer(self, kind: object, status: NodeStatus, build: Callable[[pb.NodeStatus], Any]) -> bytes:
        # equal, not only the same object: signers each read their own, equal, status after the release
        if self._status is None or (status is not self._status and status != self._status):
            self._status, self._message, self._answers = status, wire.status_to_proto(status), {}
            self.serialized += 1
        answer = self._answers.get(kind)
        if answer is None:
            answer = self._answers[kind] = build(self._message).SerializeToString()
        return answer

"""Answers that carry the node's status, serialized once however many calls they answer.

    answers = StatusAnswers()
    return answers.status(status)                                  # Status: a pb.NodeStatus's wire bytes
    return answers.upload(round_index=3, status=s)                 # UploadAck of an upload that waited
    return answers.acknowledged(status)                            # AcknowledgeAck

At a seal every waiting owner is answered with one status, and that status carries the round's receipt, whose
body lists every commitment (67 KB at 1,000 owners). Built per call, each answer held a protobuf copy of the
receipt and the serialized bytes (and briefly a third copy) until gRPC had sent it; the seal wakes every owner at
once, so at 1,000 owners that was 1,000 receipts several times over at the same moment (docs/performance.md,
"Many owners"). Here the status is serialized once per distinct status, and every call answered with it gets the
same bytes object: a Status answer is those bytes, an Acknowledge or waiting upload's answer frames them once as
its `status` field (after the upload's round: protobuf reads fields in any order).
"""

from __future__ import annotations

from typing import Any

from enclavefl.transport import wire
from enclavefl.transport.api import NodeStatus
from enclavefl.transport.proto import enclavefl_pb2 as pb

_UPLOAD_STATUS_TAG = bytes(((pb.UploadAck.DESCRIPTOR.fields_by_name["status"].number << 3) | 2,))
_ACK_STATUS_TAG = bytes(((pb.AcknowledgeAck.DESCRIPTOR.fields_by_name["status"].number << 3) | 2,))


def serialize(answer: Any) -> bytes:
    """gRPC's response serializer: a message, or the bytes of one already serialized (no copy)."""
    return answer if isinstance(answer, bytes) else bytes(answer.SerializeToString())


class StatusAnswers:
    """The last status answered and its wire bytes, framed for each RPC (used on the server's event loop only)."""

    def __init__(self) -> None:
        self._status: NodeStatus | None = None
        self._wire = b""
        self._framed: dict[tuple[bytes, int], bytes] = {}
        self.serialized = 0  # statuses serialized (tests: one per distinct status, not one per call)

    def status(self, status: NodeStatus) -> bytes:
        # equal, not only the same object: signers each read their own, equal, status after the release
        if self._status is None or (status is not self._status and status != self._status):
            self._status, self._wire, self._framed = status, wire.status_to_proto(status).SerializeToString(), {}
            self.serialized += 1
        return self._wire

    def upload(self, *, round_index: int, status: NodeStatus) -> bytes:
        """A waiting upload's answer: its round and the status, the same bytes for every upload of the round (the
        payload's hash, which the owner computed itself, comes back only to an upload that did not wait)."""
        return self._framed_status(_UPLOAD_STATUS_TAG, round_index, status)

    def acknowledged(self, status: NodeStatus) -> bytes:
        return self._framed_status(_ACK_STATUS_TAG, 0, status)

    def _framed_status(self, tag: bytes, round_index: int, status: NodeStatus) -> bytes:
        message = self.status(status)
        framed = self._framed.get((tag, round_index))
        if framed is None:
            head = pb.UploadAck(round=round_index).SerializeToString() if tag == _UPLOAD_STATUS_TAG else b""
            framed = self._framed[(tag, round_index)] = b"".join((head, tag, _varint(len(message)), message))
        return framed


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)

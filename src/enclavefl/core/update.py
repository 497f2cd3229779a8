"""One update, one value: the header that travels ahead of its bytes, and the bytes (a stream at the node).

    message = UpdateMessage.of(owner="alice", round=3, ...)   # owner side: core/update_message.py
    update = message.incoming()          # what a node receives: the same header and the payload as a chunk stream
    worker.submit_update(update)         # the node's ingest reads `update.header` once and streams `update.chunks`

The gRPC handler builds the `IncomingUpdate` once, from the upload's metadata and the authenticated caller, and it
goes down to the fold unchanged; the in-memory transport hands the node the same value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateHeader:
    """What a node reads before an update's first byte: who sends it for which round, and what it commits to.

    `commitment` = HMAC-SHA256(salt, domain || SHA-256(payload)) (core/commitments.py): the receipt lists it. The
    salt is the owner's secret, fresh per upload; only the enclave sees it besides.
    """

    owner: str
    round: int
    num_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)  # e.g. train_loss; aggregated before release
    commitment_salt: bytes = field(repr=False)
    commitment: bytes
    # The owner's evaluation, on its held-out data, of the model this round started from (job.evaluate_every):
    # its metrics and that data's size (their weight in the mean); released only as means over >= K owners.
    evaluation: Mapping[str, float] = field(default_factory=dict)
    evaluation_examples: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingUpdate:
    """An update as a node receives it: its header and its payload's chunks, read once, as they arrive."""

    header: UpdateHeader
    chunks: Iterable[bytes | memoryview]
    # the payload's whole length when the receiver knows it before reading (an in-memory message): a payload over
    # the job's limit is refused before its first byte is read; None for a stream (the stream's own limit applies)
    size: int | None = None

"""One update, one value: the header that travels ahead of its bytes, and the bytes (a stream at the node).

    message = UpdateMessage.of(owner="alice", round=3, num_examples=40, payload=safetensors_bytes)   # owner side
    update = message.incoming()          # what a node receives: the same header and the payload as a chunk stream
    worker.submit_update(update)         # the node's ingest reads `update.header` once and streams `update.chunks`

The gRPC handler builds the `IncomingUpdate` once, from the upload's metadata and the authenticated caller, and it
goes down to the fold unchanged; the in-memory transport hands the node the same value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from enclavefl.core.commitments import commitment_of_payload, new_commitment_salt


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


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateMessage:
    """An update as its owner sends it: the header and the whole payload (safetensors bytes, or a masked input)."""

    header: UpdateHeader
    payload: bytes = field(repr=False)  # megabytes, often: never in a log line

    @classmethod
    def of(
        cls,
        *,
        owner: str,
        round: int,
        num_examples: int,
        payload: bytes,
        metrics: Mapping[str, float] | None = None,
        commitment_salt: bytes | None = None,
        salts: Callable[[], bytes] = new_commitment_salt,
        evaluation: Mapping[str, float] | None = None,
        evaluation_examples: int = 0,
    ) -> UpdateMessage:
        """The message for `payload`, committed under `commitment_salt` (default: a fresh salt from `salts`)."""
        salt = commitment_salt if commitment_salt is not None else salts()
        header = UpdateHeader(
            owner=owner,
            round=round,
            num_examples=num_examples,
            metrics=dict(metrics or {}),
            commitment_salt=salt,
            commitment=commitment_of_payload(salt=salt, payload=payload),
            evaluation=dict(evaluation or {}),
            evaluation_examples=evaluation_examples,
        )
        return cls(header=header, payload=payload)

    def incoming(self, *, owner: str | None = None) -> IncomingUpdate:
        """The message as a node receives it (one chunk); `owner`: the sender the transport authenticated."""
        header = self.header if owner is None else dataclasses.replace(self.header, owner=owner)
        return IncomingUpdate(header=header, chunks=(self.payload,), size=len(self.payload))

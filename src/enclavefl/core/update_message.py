"""An update as its owner sends it: the header (core/update.py) and the whole payload, committed.

    message = UpdateMessage.of(owner="alice", round=3, num_examples=40, payload=safetensors_bytes)
    update = message.incoming()          # what a node receives: the same header and the payload as a chunk stream

Owners and the in-memory transport build these; a node only ever receives the `IncomingUpdate`, so this module
stays out of the enclave's import closure (tests/enclave/test_tcb.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from enclavefl.core.commitments import SALT_BYTES, update_commitment
from enclavefl.core.update import IncomingUpdate, UpdateHeader


def new_commitment_salt() -> bytes:
    """A fresh 32-byte salt from the OS CSPRNG; one per upload, kept by the owner, never reused."""
    return os.urandom(SALT_BYTES)


def commitment_of_payload(*, salt: bytes, payload: bytes | memoryview) -> bytes:
    """The commitment to these payload bytes under `salt` (core/commitments.py says why it hides the payload)."""
    return update_commitment(salt=salt, payload_sha256=hashlib.sha256(payload).digest())


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

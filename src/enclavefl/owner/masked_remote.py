"""A masked-mode owner's relay: the node's `Masking` call over its connection, asked again while a phase is open.

relay = NodeMaskedRelay(node.client, timeout=job.round_deadline_seconds)    # gRPC or in-memory connection
MaskedOwner(owner=data_owner, relay=relay).run_round(round_index)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from enclavefl.core.update_message import UpdateMessage
from enclavefl.errors import MaskingRefused
from enclavefl.secagg.messages import KeyAdvertisement, ShareBundle, UnmaskShares
from enclavefl.secagg.wire import (
    decode_advertisements,
    decode_bundles,
    decode_names,
    encode_advertisements,
    encode_answer,
    encode_bundles,
)


class MaskingClient(Protocol):
    """What the relay needs of a node connection (transport/connection.py's NodeConnection has it)."""

    def masking_step(self, *, round_index: int, step: str, body: bytes = b"") -> tuple[bool, bytes]: ...

    def upload_update(self, message: UpdateMessage) -> bytes: ...


class NodeMaskedRelay:
    """The four masked-mode steps as the node's Masking calls, and the masked input as an upload."""

    def __init__(
        self,
        client: MaskingClient,
        *,
        timeout: float,
        poll_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self._monotonic = monotonic

    def _step(self, round_index: int, step: str, body: bytes = b"") -> bytes:
        deadline = self._monotonic() + self.timeout
        while True:
            ready, reply = self.client.masking_step(round_index=round_index, step=step, body=body)
            if ready:
                return reply
            if self._monotonic() >= deadline:
                raise MaskingRefused(f"round {round_index}: the node kept the phase before {step!r} open too long")
            self._sleep(self.poll_seconds)

    def masking_attempt(self, round_index: int) -> int:
        return int(self._step(round_index, "attempt").decode())

    def advertise_keys(self, round_index: int, ad: KeyAdvertisement) -> None:
        self._step(round_index, "advertise", encode_advertisements([ad]))

    def masking_roster(self, round_index: int, attempt: int) -> tuple[KeyAdvertisement, ...]:
        return tuple(decode_advertisements(self._step(round_index, "roster", str(attempt).encode())))

    def submit_share_bundles(self, round_index: int, owner: str, bundles: Sequence[ShareBundle]) -> None:
        self._step(round_index, "shares", encode_bundles(bundles))

    def share_bundles_for(self, round_index: int, owner: str, attempt: int) -> tuple[ShareBundle, ...]:
        return tuple(decode_bundles(self._step(round_index, "bundles", str(attempt).encode())))

    def upload(self, message: UpdateMessage) -> bytes:
        """The masked input (no metrics, no example count: per-owner values in the clear are what masked mode keeps
        from the enclave); the payload SHA-256 the node folded."""
        return self.client.upload_update(message)

    def unmasking_survivors(self, round_index: int, attempt: int) -> tuple[str, ...]:
        """The round's survivors, from the opening `attempt` only (MaskingRefused once that opening is over)."""
        return tuple(decode_names(self._step(round_index, "survivors", str(attempt).encode())))

    def submit_unmask_shares(self, round_index: int, answer: UnmaskShares) -> None:
        self._step(round_index, "unmask", encode_answer(answer))

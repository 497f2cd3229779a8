"""A masked-mode owner's relay over gRPC: the node's `Masking` call, asked again while a phase is still open.

masked = MaskedOwner(owner=data_owner, relay=GrpcMaskedRelay(node.client, timeout=job.round_deadline_seconds))
masked.run_round(round_index)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from enclavefl.core.messages import UpdateMessage
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
    def masking_step(self, *, round_index: int, step: str, body: bytes = b"") -> tuple[bool, bytes]: ...

    def upload_update(self, message: UpdateMessage) -> bytes: ...


class GrpcMaskedRelay:
    """Implements secagg.relay.MaskedRelay with the node's Masking and UploadUpdate calls."""

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

    def masking_roster(self, round_index: int) -> tuple[KeyAdvertisement, ...]:
        return tuple(decode_advertisements(self._step(round_index, "roster")))

    def submit_share_bundles(self, round_index: int, owner: str, bundles: Sequence[ShareBundle]) -> None:
        self._step(round_index, "shares", encode_bundles(bundles))

    def share_bundles_for(self, round_index: int, owner: str) -> tuple[ShareBundle, ...]:
        return tuple(decode_bundles(self._step(round_index, "bundles")))

    def submit_masked_update(
        self, *, owner: str, round_index: int, payload: bytes, commitment_salt: bytes, commitment: bytes
    ) -> None:
        # no metrics and no example count: per-owner values in the clear are what masked mode keeps from the enclave
        message = UpdateMessage(
            owner=owner, round=round_index, num_examples=1, payload=payload, metrics={}, commitment_salt=commitment_salt
        )
        if message.commitment() != commitment:
            raise MaskingRefused("the masked upload's commitment does not match its payload")
        self.client.upload_update(message)

    def unmasking_survivors(self, round_index: int) -> tuple[str, ...]:
        return tuple(decode_names(self._step(round_index, "survivors")))

    def submit_unmask_shares(self, round_index: int, answer: UnmaskShares) -> None:
        self._step(round_index, "unmask", encode_answer(answer))

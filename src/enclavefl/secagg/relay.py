"""What a masked-mode owner needs from the node that relays its messages (the enclave's SecureWorker)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from enclavefl.secagg.messages import KeyAdvertisement, ShareBundle, UnmaskShares


class MaskedRelay(Protocol):
    def masking_attempt(self, round_index: int) -> int: ...

    def advertise_keys(self, round_index: int, ad: KeyAdvertisement) -> None: ...

    def masking_roster(self, round_index: int) -> tuple[KeyAdvertisement, ...]: ...

    def submit_share_bundles(self, round_index: int, owner: str, bundles: Sequence[ShareBundle]) -> None: ...

    def share_bundles_for(self, round_index: int, owner: str) -> tuple[ShareBundle, ...]: ...

    def submit_masked_update(
        self, *, owner: str, round_index: int, payload: bytes, commitment_salt: bytes, commitment: bytes
    ) -> None: ...

    def unmasking_survivors(self, round_index: int) -> tuple[str, ...]: ...

    def submit_unmask_shares(self, round_index: int, answer: UnmaskShares) -> None: ...

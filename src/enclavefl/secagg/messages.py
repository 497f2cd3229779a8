"""The masked-mode messages owners exchange through the enclave (which relays them and never opens a share).

KeyAdvertisement   owner -> all (relayed)   two X25519 public keys for this round
ShareBundle        owner -> neighbour       AES-GCM( self-mask seed share || mask key share )
UnmaskShares       survivor -> enclave      per neighbour: the self-mask share (it survived) or the mask key
                                            share (it dropped out), never both
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from enclavefl.errors import MaskingRefused
from enclavefl.secagg.keys import PUBLIC_BYTES
from enclavefl.secagg.shamir import SHARE_BYTES

SHARE_WIRE_BYTES = 2 + SHARE_BYTES
NONCE_BYTES = 12
BUNDLE_BYTES = NONCE_BYTES + 2 * SHARE_WIRE_BYTES + 16  # nonce, two shares, GCM tag


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAdvertisement:
    owner: str
    cipher_public: bytes
    mask_public: bytes
    self_mask_hash: bytes  # SHA-256 of the self-mask seed: the enclave checks the seed it rebuilds from shares

    def __post_init__(self) -> None:
        if len(self.cipher_public) != PUBLIC_BYTES or len(self.mask_public) != PUBLIC_BYTES:
            raise MaskingRefused(f"{self.owner!r}: an X25519 public key is {PUBLIC_BYTES} bytes")
        if len(self.self_mask_hash) != 32:
            raise MaskingRefused(f"{self.owner!r}: the self-mask seed hash is 32 bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareBundle:
    sender: str
    recipient: str
    ciphertext: bytes

    def __post_init__(self) -> None:
        if len(self.ciphertext) != BUNDLE_BYTES:
            raise MaskingRefused(f"a share bundle is {BUNDLE_BYTES} bytes, got {len(self.ciphertext)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class UnmaskShares:
    owner: str
    self_mask_shares: Mapping[str, bytes] = field(default_factory=dict)  # about survivors
    mask_key_shares: Mapping[str, bytes] = field(default_factory=dict)  # about owners that dropped out

    def __post_init__(self) -> None:
        both = set(self.self_mask_shares) & set(self.mask_key_shares)
        if both:
            raise MaskingRefused(f"{self.owner!r} sent both shares of {sorted(both)}: an owner never reveals both")
        for share in (*self.self_mask_shares.values(), *self.mask_key_shares.values()):
            if len(share) != SHARE_WIRE_BYTES:
                raise MaskingRefused(f"a share is {SHARE_WIRE_BYTES} bytes, got {len(share)}")

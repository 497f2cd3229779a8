"""Per-round X25519 keys of a masked-mode owner, and what is derived from them with HKDF-SHA256.

    keys = RoundKeys.generate()
    seed = pairwise_seed(keys.mask_private, peer_mask_public, context=ctx, pair=("alice", "bob"))
    box = share_cipher(keys.cipher_private, peer_cipher_public, context=ctx, sender="alice", recipient="bob")

Two key pairs per owner per round, as in SecAgg: `mask` keys agree the pairwise mask seeds (the enclave
learns a dropped owner's mask private key from Shamir shares, so it must be a key used for nothing else),
`cipher` keys agree the AES-GCM keys that hide each Shamir share from the relaying enclave. `context` is the
round's graph seed (job digest, round, attempt), so no seed or key ever serves two rounds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PUBLIC_BYTES = 32
_MASK_INFO = b"enclavefl/secagg/pairwise-mask/v1\x00"
_SHARE_INFO = b"enclavefl/secagg/share-key/v1\x00"
_RAW = serialization.Encoding.Raw


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundKeys:
    """One owner's secrets for one round: two X25519 keys and the self-mask seed (all fresh, never stored)."""

    cipher_private: X25519PrivateKey
    mask_private: X25519PrivateKey
    self_mask_seed: bytes

    @classmethod
    def generate(cls) -> RoundKeys:
        return cls(
            cipher_private=X25519PrivateKey.generate(),
            mask_private=X25519PrivateKey.generate(),
            self_mask_seed=os.urandom(32),
        )


def _derive(shared: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def _pair_label(a: str, b: str) -> bytes:
    first, second = sorted((a, b))
    return first.encode() + b"\x00" + second.encode() + b"\x00"


def pairwise_seed(private: X25519PrivateKey, peer_public: bytes, *, context: bytes, pair: tuple[str, str]) -> bytes:
    """The 32-byte mask seed two owners share (the same from either side: X25519 is symmetric)."""
    if len(peer_public) != PUBLIC_BYTES:
        raise ValueError(f"an X25519 public key is {PUBLIC_BYTES} bytes, got {len(peer_public)}")
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return _derive(shared, _MASK_INFO + context + _pair_label(*pair))


def share_cipher(
    private: X25519PrivateKey, peer_public: bytes, *, context: bytes, sender: str, recipient: str
) -> tuple[AESGCM, bytes]:
    """An AES-GCM key for shares from `sender` to `recipient`, and the associated data that binds them."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    aad = context + b"\x00" + sender.encode() + b"\x00->\x00" + recipient.encode()
    return AESGCM(_derive(shared, _SHARE_INFO + context + _pair_label(sender, recipient))), aad

"""The sealing format's magic and its key derivation, shared by both formats (seal.py, seal_stream.py).

aes_key = derived_key(tee_key, "global-model")   # HKDF-SHA256 of the TEE's 16-byte key, bound to a label
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC: Final = b"EFLSEAL"
TEE_KEY_SIZE: Final = 16
_KDF_INFO: Final = b"enclavefl seal v1\x00"


def derived_key(key: bytes, label: str) -> bytes:
    """The AES-256 key for `label` under the TEE key `key` (HKDF-SHA256)."""
    if len(key) != TEE_KEY_SIZE:
        raise ValueError(f"sealing key must be the TEE's {TEE_KEY_SIZE}-byte key, got {len(key)} bytes")
    if not label:
        raise ValueError("label must name what is sealed, e.g. 'global-model'")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO + label.encode()).derive(key)

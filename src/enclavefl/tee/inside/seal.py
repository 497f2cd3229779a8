"""Sealing: AES-256-GCM under a key derived from the TEE's 16-byte sealing key, bound to a label.

Version 2 is the chunked format of tee/inside/seal_stream.py (sealed checkpoints: read back a chunk at a time,
each chunk authenticated); `unseal` opens both. Blob format (version 1):

    magic b"EFLSEAL" (7) | version (1) | nonce (12) | ciphertext || GCM tag (16)

The associated data is magic || version || label || context, so a blob sealed for one purpose ("global-model")
does not open as another ("accountant-state"), and a version byte cannot be swapped silently. `context` (empty
unless given) binds a blob to its place without a new key derivation: a record of an append-only log carries its
index and the hash of the record before it (enclave/receipt_log.py), so it opens nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclavefl.errors import SealingError
from enclavefl.tee.inside.seal_keys import MAGIC, derived_key
from enclavefl.tee.inside.seal_stream import unseal_stream

__all__ = ["MAGIC", "STATE_SEALING_KEY", "VERSION", "derived_key", "seal", "unseal"]

VERSION: Final = 1
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_HEADER_SIZE: Final = len(MAGIC) + 1 + _NONCE_SIZE
# The TEE key every secret-holding state is sealed under. MRENCLAVE, not MRSIGNER: whoever holds the enclave
# signing key (the operator, in enclavefl's threat model) can sign another enclave that derives the MRSIGNER
# key, but no other code derives this one (docs/gramine.md §6).
STATE_SEALING_KEY: Final = "_sgx_mrenclave"


def _aead(key: bytes, label: str) -> AESGCM:
    return AESGCM(derived_key(key, label))


def _associated_data(version: int, label: str, context: bytes = b"") -> bytes:
    return MAGIC + bytes([version]) + label.encode() + context


def seal(
    key: bytes,
    plaintext: bytes,
    *,
    label: str,
    context: bytes = b"",
    urandom: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Encrypt and authenticate `plaintext` for `label` (and `context`) under the TEE sealing key `key`."""
    aead = _aead(key, label)
    nonce = urandom(_NONCE_SIZE)
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("urandom returned the wrong number of bytes")
    sealed = aead.encrypt(nonce, plaintext, _associated_data(VERSION, label, context))
    return MAGIC + bytes([VERSION]) + nonce + sealed


def unseal(key: bytes, blob: bytes, *, label: str, context: bytes = b"") -> bytes:
    """The plaintext `seal` was given (for the same label and context), or `SealingError` naming the failed check."""
    aead = _aead(key, label)
    if not blob.startswith(MAGIC):
        if MAGIC.startswith(blob):
            raise SealingError(f"truncated sealed blob: {len(blob)} bytes, shorter than its header")
        raise SealingError("not a sealed blob: bad magic")
    if len(blob) < len(MAGIC) + 1:
        raise SealingError(f"truncated sealed blob: {len(blob)} bytes, no version byte")
    version = blob[len(MAGIC)]
    if version == 2 and not context:  # chunked (tee/inside/seal_stream.py: sealed checkpoints)
        return bytes(unseal_stream(key, blob, label=label))
    if version != VERSION:
        raise SealingError(f"unknown sealed format version {version} (this build reads version {VERSION})")
    if len(blob) < _HEADER_SIZE + _TAG_SIZE:
        raise SealingError(f"truncated sealed blob: {len(blob)} bytes, the minimum is {_HEADER_SIZE + _TAG_SIZE}")
    nonce = blob[len(MAGIC) + 1 : _HEADER_SIZE]
    try:
        return aead.decrypt(nonce, blob[_HEADER_SIZE:], _associated_data(version, label, context))
    except InvalidTag as exc:
        raise SealingError("authentication failed: wrong key, wrong label, or tampered") from exc

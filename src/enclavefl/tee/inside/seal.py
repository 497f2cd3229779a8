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
from collections.abc import Callable, Iterable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclavefl.errors import SealingError

MAGIC: Final = b"EFLSEAL"
VERSION: Final = 1
TEE_KEY_SIZE: Final = 16
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_HEADER_SIZE: Final = len(MAGIC) + 1 + _NONCE_SIZE
_KDF_INFO: Final = b"enclavefl seal v1\x00"
# The TEE key every secret-holding state is sealed under. MRENCLAVE, not MRSIGNER: whoever holds the enclave
# signing key (the operator, in enclavefl's threat model) can sign another enclave that derives the MRSIGNER
# key, but no other code derives this one (docs/gramine.md §6).
STATE_SEALING_KEY: Final = "_sgx_mrenclave"


_STREAM_PIECE_BYTES: Final = 4 << 20  # what seal_parts encrypts at a time: its only buffer


def derived_key(key: bytes, label: str) -> bytes:
    """The AES-256 key for `label` under the TEE key `key` (HKDF-SHA256)."""
    if len(key) != TEE_KEY_SIZE:
        raise ValueError(f"sealing key must be the TEE's {TEE_KEY_SIZE}-byte key, got {len(key)} bytes")
    if not label:
        raise ValueError("label must name what is sealed, e.g. 'global-model'")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO + label.encode()).derive(key)


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


def seal_parts(
    key: bytes,
    parts: Iterable[bytes | memoryview],
    write: Callable[[bytes], object],
    *,
    label: str,
    urandom: Callable[[int], bytes] = os.urandom,
) -> None:
    """`seal(key, b"".join(parts))`, the same blob, handed to `write` piece by piece.

    The plaintext is never joined and the ciphertext never held whole: a checkpoint of a large model costs a
    few MiB of buffers instead of two or three model-sized copies (docs/performance.md, "Node memory").
    """
    nonce = urandom(_NONCE_SIZE)
    if len(nonce) != _NONCE_SIZE:
        raise ValueError("urandom returned the wrong number of bytes")
    encryptor = Cipher(algorithms.AES(derived_key(key, label)), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(_associated_data(VERSION, label))
    write(MAGIC + bytes([VERSION]) + nonce)
    for part in parts:
        view = memoryview(part).cast("B")
        for start in range(0, len(view), _STREAM_PIECE_BYTES):
            write(encryptor.update(view[start : start + _STREAM_PIECE_BYTES]))
    write(encryptor.finalize() + encryptor.tag)


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
        from enclavefl.tee.inside.seal_stream import unseal_stream

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

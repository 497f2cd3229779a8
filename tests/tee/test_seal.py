"""Sealed blobs open only with the same key and label, and say which check failed otherwise."""

from __future__ import annotations

import pytest

from enclavefl.errors import SealingError
from enclavefl.tee.inside.seal import MAGIC, VERSION, seal, unseal

KEY = bytes(range(16))
OTHER_KEY = bytes(range(1, 17))
PLAINTEXT = b"global model round 7" * 10


def test_round_trip_returns_the_plaintext() -> None:
    blob = seal(KEY, PLAINTEXT, label="global-model")

    assert unseal(KEY, blob, label="global-model") == PLAINTEXT


def test_empty_plaintext_round_trips() -> None:
    assert unseal(KEY, seal(KEY, b"", label="x"), label="x") == b""


def test_blob_starts_with_magic_and_version_and_hides_the_plaintext() -> None:
    blob = seal(KEY, PLAINTEXT, label="global-model")

    assert blob.startswith(MAGIC + bytes([VERSION]))
    assert PLAINTEXT[:16] not in blob


def test_two_seals_of_the_same_plaintext_differ() -> None:
    assert seal(KEY, PLAINTEXT, label="a") != seal(KEY, PLAINTEXT, label="a")


def test_injected_randomness_gives_a_reproducible_blob() -> None:
    blob = seal(KEY, PLAINTEXT, label="a", urandom=lambda n: bytes(n))

    assert blob == seal(KEY, PLAINTEXT, label="a", urandom=lambda n: bytes(n))


def test_wrong_key_fails_authentication() -> None:
    blob = seal(KEY, PLAINTEXT, label="global-model")

    with pytest.raises(SealingError, match="authentication failed"):
        unseal(OTHER_KEY, blob, label="global-model")


def test_wrong_label_fails_authentication() -> None:
    blob = seal(KEY, PLAINTEXT, label="global-model")

    with pytest.raises(SealingError, match="wrong label"):
        unseal(KEY, blob, label="accountant-state")


def test_a_blob_opens_only_in_the_context_it_was_sealed_for() -> None:
    """The receipt log binds each record to its index and predecessor this way (enclave/receipt_log.py)."""
    blob = seal(KEY, b"record", label="log", context=b"\x00" * 8 + b"prev")

    assert unseal(KEY, blob, label="log", context=b"\x00" * 8 + b"prev") == b"record"
    for other in (b"", b"\x00" * 7 + b"\x01prev", b"\x00" * 8 + b"other"):
        with pytest.raises(SealingError, match="authentication failed"):
            unseal(KEY, blob, label="log", context=other)


@pytest.mark.parametrize("position", [len(MAGIC) + 1, len(MAGIC) + 12, 40, -1])
def test_any_flipped_byte_after_the_version_fails_authentication(position: int) -> None:
    blob = bytearray(seal(KEY, PLAINTEXT, label="global-model"))

    blob[position] ^= 0x01

    with pytest.raises(SealingError, match="tampered"):
        unseal(KEY, bytes(blob), label="global-model")


def test_bad_magic_is_named() -> None:
    blob = bytearray(seal(KEY, PLAINTEXT, label="l"))

    blob[0] ^= 0xFF

    with pytest.raises(SealingError, match="bad magic"):
        unseal(KEY, bytes(blob), label="l")


def test_unknown_version_is_named() -> None:
    blob = bytearray(seal(KEY, PLAINTEXT, label="l"))

    blob[len(MAGIC)] = 3  # 2 is the chunked format (tests/tee/test_seal_stream.py)

    with pytest.raises(SealingError, match="unknown sealed format version 3"):
        unseal(KEY, bytes(blob), label="l")


@pytest.mark.parametrize("keep", [0, 3, len(MAGIC), len(MAGIC) + 5, len(MAGIC) + 1 + 12 + 15])
def test_truncated_blob_is_named(keep: int) -> None:
    blob = seal(KEY, PLAINTEXT, label="l")

    with pytest.raises(SealingError, match="truncated"):
        unseal(KEY, blob[:keep], label="l")


def test_truncated_ciphertext_fails_authentication() -> None:
    blob = seal(KEY, PLAINTEXT, label="l")

    with pytest.raises(SealingError, match="authentication failed"):
        unseal(KEY, blob[:-1], label="l")


@pytest.mark.parametrize("key", [b"", bytes(15), bytes(32)])
def test_key_that_is_not_a_16_byte_tee_key_is_a_programming_error(key: bytes) -> None:
    with pytest.raises(ValueError, match="16-byte"):
        seal(key, PLAINTEXT, label="l")


def test_empty_label_is_refused() -> None:
    with pytest.raises(ValueError, match="label"):
        seal(KEY, PLAINTEXT, label="")

"""Update commitments hide the payload without the salt, bind it with the salt, and refuse bad lengths."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from enclavefl.core.commitments import SALT_BYTES, check_commitment, update_commitment
from enclavefl.core.update_message import UpdateMessage, commitment_of_payload, new_commitment_salt
from enclavefl.errors import CommitmentMismatch, UpdateRejected

PAYLOAD = b"safetensors bytes of a trained model"
OTHER = b"safetensors bytes of another model!!"


def test_the_commitment_is_hmac_sha256_under_the_salt_of_the_domain_and_payload_hash() -> None:
    salt = bytes(range(32))
    digest = hashlib.sha256(PAYLOAD).digest()

    expected = hmac.new(salt, b"enclavefl/update-commitment/v1\x00" + digest, hashlib.sha256).digest()
    assert update_commitment(salt=salt, payload_sha256=digest) == expected
    assert commitment_of_payload(salt=salt, payload=PAYLOAD) == expected


def test_salts_are_fresh_32_bytes_and_change_the_commitment() -> None:
    first, second = new_commitment_salt(), new_commitment_salt()

    assert len(first) == len(second) == SALT_BYTES and first != second
    assert commitment_of_payload(salt=first, payload=PAYLOAD) != commitment_of_payload(salt=second, payload=PAYLOAD)
    assert commitment_of_payload(salt=first, payload=PAYLOAD) != hashlib.sha256(PAYLOAD).digest()


def test_a_commitment_opens_only_to_its_own_payload() -> None:
    salt = new_commitment_salt()
    commitment = commitment_of_payload(salt=salt, payload=PAYLOAD)

    check_commitment(salt=salt, payload_sha256=hashlib.sha256(PAYLOAD).digest(), commitment=commitment)
    with pytest.raises(CommitmentMismatch, match="commits to other bytes"):
        check_commitment(salt=salt, payload_sha256=hashlib.sha256(OTHER).digest(), commitment=commitment)
    with pytest.raises(CommitmentMismatch, match="commits to other bytes"):
        check_commitment(
            salt=new_commitment_salt(), payload_sha256=hashlib.sha256(PAYLOAD).digest(), commitment=commitment
        )


@pytest.mark.parametrize(
    ("salt", "commitment"),
    [(b"", bytes(32)), (bytes(31), bytes(32)), (bytes(32), bytes(31))],
    ids=["no salt", "short salt", "short commitment"],
)
def test_wrong_lengths_are_refused_as_an_update_rejection(salt: bytes, commitment: bytes) -> None:
    with pytest.raises(CommitmentMismatch) as info:
        check_commitment(salt=salt, payload_sha256=hashlib.sha256(PAYLOAD).digest(), commitment=commitment)
    assert isinstance(info.value, UpdateRejected)


def test_each_update_message_gets_its_own_salt_and_commits_to_its_payload() -> None:
    a = UpdateMessage.of(owner="a", round=1, num_examples=1, payload=PAYLOAD)
    b = UpdateMessage.of(owner="a", round=1, num_examples=1, payload=PAYLOAD)

    assert a.header.commitment_salt != b.header.commitment_salt
    assert a.header.commitment == commitment_of_payload(salt=a.header.commitment_salt, payload=PAYLOAD)
    assert a.header.commitment != b.header.commitment
    assert a.header.commitment_salt.hex() not in repr(a)  # the secret does not end up in logs

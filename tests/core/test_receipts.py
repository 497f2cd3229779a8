"""Receipt chains verify only when signed by the node key, linked, consecutive and for this job; rollback is caught."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.receipt_checks import ReceiptTracker, verify_receipt, verify_receipt_chain
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, SignedReceipt, sign_receipt
from enclavefl.errors import ReceiptError, RollbackDetected

JOB = hashlib.sha256(b"job").digest()


def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def chain(key: ec.EllipticCurvePrivateKey, rounds: int, *, job: bytes = JOB, salt: bytes = b"") -> list[SignedReceipt]:
    out: list[SignedReceipt] = []
    previous = GENESIS_SHA256
    for r in range(1, rounds + 1):
        body = RoundReceipt(
            job_digest=job,
            round=r,
            previous_sha256=previous,
            global_model_sha256=hashlib.sha256(b"model%d" % r + salt).digest(),
            contributions=2,
            update_commitments=(hashlib.sha256(b"b").digest(), hashlib.sha256(b"a").digest()),
            dp={"noise_multiplier": 1.1},
            cumulative_epsilon=0.5 * r,
        )
        signed = sign_receipt(body, key)
        out.append(signed)
        previous = signed.sha256
    return out


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_a_well_formed_chain_verifies_and_survives_the_wire(key: ec.EllipticCurvePrivateKey) -> None:
    wire = [SignedReceipt.parse(s.body, s.signature) for s in chain(key, 3)]

    receipts = verify_receipt_chain(wire, pem(key), JOB)

    assert [r.round for r in receipts] == [1, 2, 3]
    assert receipts[0].update_commitments == tuple(sorted(receipts[0].update_commitments))


def test_a_receipt_signed_by_another_key_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ReceiptError, match="signature does not verify"):
        verify_receipt_chain(chain(key, 2), pem(ec.generate_private_key(ec.SECP256R1())), JOB)


def test_a_chain_for_another_job_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ReceiptError, match="receipt is for job"):
        verify_receipt_chain(chain(key, 1, job=bytes(32)), pem(key), JOB)


def test_a_chain_with_a_gap_or_a_broken_link_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    receipts = chain(key, 3)
    relinked = sign_receipt(dataclasses.replace(receipts[1].receipt, previous_sha256=bytes(32)), key)

    with pytest.raises(ReceiptError, match="gap"):
        verify_receipt_chain([receipts[0], receipts[2]], pem(key), JOB)
    with pytest.raises(ReceiptError, match="does not link"):
        verify_receipt_chain([receipts[0], relinked], pem(key), JOB)


def test_a_tampered_body_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    signed = chain(key, 1)[0]
    body = signed.body.replace(b'"contributions":2', b'"contributions":3')

    with pytest.raises(ReceiptError):
        verify_receipt_chain([SignedReceipt.parse(body, signed.signature)], pem(key), JOB)


def test_a_remembered_verification_never_vouches_for_other_bytes(key: ec.EllipticCurvePrivateKey) -> None:
    """Verified signatures are remembered (owners re-check the chain every round); only the exact bytes count."""
    genuine = chain(key, 1)[0]
    other_key = ec.generate_private_key(ec.SECP256R1())
    verify_receipt(genuine, pem(key))  # remembered from here on

    body = genuine.body.replace(b'"contributions":2', b'"contributions":3')
    with pytest.raises(ReceiptError, match="signature does not verify"):
        verify_receipt(dataclasses.replace(genuine, body=body), pem(key))  # same signature, other body
    with pytest.raises(ReceiptError, match="signature does not verify"):
        verify_receipt(genuine, pem(other_key))  # same receipt, another node's key
    forged = dataclasses.replace(genuine, signature=genuine.signature[:-1] + bytes([genuine.signature[-1] ^ 1]))
    for _ in range(2):  # a failure is not remembered either way
        with pytest.raises(ReceiptError, match="signature does not verify"):
            verify_receipt(forged, pem(key))
    assert verify_receipt(genuine, pem(key)) == genuine.receipt


def test_a_non_canonical_body_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    signed = chain(key, 1)[0]

    with pytest.raises(ReceiptError, match="canonical"):
        SignedReceipt.parse(signed.body.replace(b",", b", ", 1), signed.signature)


def test_tracker_detects_a_node_whose_chain_head_went_backwards(key: ec.EllipticCurvePrivateKey) -> None:
    tracker = ReceiptTracker(job_digest=JOB)
    tracker.observe(chain(key, 3), pem(key))

    with pytest.raises(RollbackDetected, match="round 2 chain head, this owner already saw round 3 > 2"):
        tracker.observe(chain(key, 3)[:2], pem(key))


def test_tracker_detects_a_rewritten_history(key: ec.EllipticCurvePrivateKey) -> None:
    tracker = ReceiptTracker(job_digest=JOB)
    tracker.observe(chain(key, 2), pem(key))

    with pytest.raises(RollbackDetected, match="history was rewritten"):
        tracker.observe(chain(key, 3, salt=b"fork"), pem(key))


def test_tracker_accepts_a_chain_that_grows(key: ec.EllipticCurvePrivateKey) -> None:
    tracker = ReceiptTracker(job_digest=JOB)
    receipts = chain(key, 3)
    tracker.observe(receipts[:1], pem(key))

    head = tracker.observe(receipts, pem(key))

    assert head is not None and head.round == 3 and tracker.head_round == 3


def test_an_owner_finds_its_accepted_update_in_the_receipt_or_raises() -> None:
    from enclavefl.core.receipt_checks import check_update_included
    from enclavefl.errors import UpdateOmitted

    mine, other = bytes([1]) * 32, bytes([2]) * 32
    receipt = RoundReceipt(
        job_digest=bytes(32),
        round=3,
        previous_sha256=bytes(32),
        global_model_sha256=bytes(32),
        contributions=1,
        update_commitments=(other,),
    )

    check_update_included(receipt, other)
    with pytest.raises(UpdateOmitted, match="round 3"):
        check_update_included(receipt, mine)


def test_tracker_verifies_only_what_is_new_yet_misses_no_forgery(key: ec.EllipticCurvePrivateKey) -> None:
    """Each round an owner sees the chain it verified plus one receipt: that receipt is checked, the rest is not
    checked again unless its bytes or the key differ."""
    tracker = ReceiptTracker(job_digest=JOB)
    receipts = chain(key, 4)
    tracker.observe(receipts[:3], pem(key))

    relinked = sign_receipt(dataclasses.replace(receipts[3].receipt, previous_sha256=bytes(32)), key)
    with pytest.raises(ReceiptError, match="does not link"):
        tracker.observe([*receipts[:3], relinked], pem(key))  # the new receipt's link is still checked
    signature = receipts[3].signature
    forged = dataclasses.replace(receipts[3], signature=signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(ReceiptError, match="signature does not verify"):
        tracker.observe([*receipts[:3], forged], pem(key))
    with pytest.raises(ReceiptError, match="signature does not verify"):
        tracker.observe(receipts[:3], pem(ec.generate_private_key(ec.SECP256R1())))  # another key: all again
    assert tracker.observe(receipts, pem(key)) == receipts[3].receipt

"""An owner signs at most one receipt per round, remembers it across restarts, and two receipts are a proof."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import release_quorum, verify_acknowledgement
from enclavefl.core.receipt_checks import (
    SignedRounds,
    check_same_round,
    find_conflicting_receipts,
    sign_acknowledgement,
)
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, SignedReceipt, sign_receipt
from enclavefl.errors import AcknowledgementRefused, ConflictingReceipts, ReceiptError, RoundAlreadySigned
from enclavefl.owner.owner_state import PersistentReceiptTracker

JOB = bytes(range(32))
NODE_KEY = ec.generate_private_key(ec.SECP256R1())
NODE_PEM = NODE_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def receipt(round_index: int, model_byte: int, previous: bytes = GENESIS_SHA256) -> SignedReceipt:
    body = RoundReceipt(
        job_digest=JOB,
        round=round_index,
        previous_sha256=previous,
        global_model_sha256=bytes([model_byte]) * 32,
        contributions=2,
        update_commitments=(bytes([1]) * 32, bytes([2]) * 32),
    )
    return sign_receipt(body, NODE_KEY)


def test_an_owner_signs_one_receipt_per_round_and_the_identical_one_again() -> None:
    rounds = SignedRounds()
    first = receipt(1, 7)
    rounds.record(first, NODE_PEM)

    rounds.record(SignedReceipt.parse(first.body, first.signature), NODE_PEM)  # the node restarted: same receipt
    other = receipt(1, 8)
    with pytest.raises(ConflictingReceipts, match="round 1: the node signed two receipts") as info:
        rounds.record(other, NODE_PEM)

    assert (info.value.first, info.value.second) == (first, other)  # the proof travels with the error
    assert rounds.signed(1) == first


def test_a_signed_round_is_never_uploaded_again_nor_replaced_in_a_chain() -> None:
    rounds = SignedRounds()
    signed = receipt(1, 7)
    rounds.record(signed, NODE_PEM)

    with pytest.raises(RoundAlreadySigned, match="round 1: this owner signed receipt"):
        rounds.check_may_upload(1)
    rounds.check_may_upload(2)
    rounds.check_chain([signed, receipt(2, 9, signed.sha256)], NODE_PEM)
    with pytest.raises(ConflictingReceipts):
        rounds.check_chain([receipt(1, 8)], NODE_PEM)


def test_anyone_holding_two_receipts_of_one_round_has_the_proof_and_one_needs_the_node_signature() -> None:
    a, b = receipt(3, 1), receipt(3, 2)

    with pytest.raises(ConflictingReceipts):
        find_conflicting_receipts([receipt(1, 5), a, receipt(2, 5), b], NODE_PEM)
    find_conflicting_receipts([receipt(1, 5), a, a], NODE_PEM)
    forged = sign_receipt(b.receipt, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ReceiptError, match="does not verify"):
        check_same_round(a, forged, NODE_PEM)  # a host cannot fabricate a "proof" against an honest node


def test_an_acknowledgement_binds_owner_round_and_receipt() -> None:
    owner_key = ec.generate_private_key(ec.SECP256R1())
    pending = receipt(1, 7)
    ack = sign_acknowledgement(owner_key, owner="alice", receipt=pending)

    verify_acknowledgement(owner_key.public_key(), ack, receipt=pending)
    with pytest.raises(AcknowledgementRefused):
        verify_acknowledgement(owner_key.public_key(), ack, receipt=receipt(1, 8))
    with pytest.raises(AcknowledgementRefused, match="does not verify"):
        verify_acknowledgement(
            owner_key.public_key(),
            ack.__class__(owner="bob", round=1, receipt_sha256=pending.sha256, signature=ack.signature),
            receipt=pending,
        )


def test_release_quorum_is_a_strict_majority() -> None:
    assert [release_quorum(n) for n in (0, 1, 2, 3, 4, 5)] == [0, 1, 2, 2, 3, 3]


def test_the_persistent_tracker_keeps_signed_receipts_across_restarts(tmp_path: Path) -> None:
    tracker = PersistentReceiptTracker.open(tmp_path, job_digest=JOB)
    signed = receipt(1, 7)
    tracker.signed_rounds.record(signed, NODE_PEM)  # written durably before record() returns

    reopened = PersistentReceiptTracker.open(tmp_path, job_digest=JOB)

    assert reopened.signed_rounds.signed(1) == signed
    with pytest.raises(RoundAlreadySigned):
        reopened.signed_rounds.check_may_upload(1)
    with pytest.raises(ConflictingReceipts):
        reopened.signed_rounds.record(receipt(1, 8), NODE_PEM)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_signed_receipt_filed_under_another_round_is_refused(tmp_path: Path) -> None:
    tracker = PersistentReceiptTracker.open(tmp_path, job_digest=JOB)
    tracker.signed_rounds.record(receipt(1, 7), NODE_PEM)
    raw = json.loads(tracker.path.read_text())
    raw["signed"] = {"2": raw["signed"]["1"]}
    tracker.path.write_text(json.dumps(raw))

    with pytest.raises(ReceiptError, match="filed under another round"):
        PersistentReceiptTracker.open(tmp_path, job_digest=JOB)

"""Two-phase round close: an owner's signature over a sealed round's receipt, as the enclave checks it.

    ack = sign_acknowledgement(owner_key, owner="alice", receipt=pending)       # core/receipt_checks.py (owners)
    verify_acknowledgement(alice_public_key, ack, receipt=pending)              # the enclave, before counting it

A round's aggregate leaves the enclave only after every accepted contributor (and, with enrolled owners, a
majority of them) returned such a signature over the round's sealed receipt. An owner records the receipt
durably before it signs, signs at most one receipt per round, and from then on refuses any node that asks it to
upload for that round again or presents another receipt for it. So no owner's update is in two released
aggregates of one round, and any two signer sets intersect, so two different releases would need an owner to
sign twice. Two different node-signed receipts for one round are themselves evidence (`check_same_round`,
in core/receipt_checks.py with the rest of what owners run: signing, and their memory of what they signed).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.receipts import SignedReceipt
from enclavefl.errors import AcknowledgementRefused

ACK_DOMAIN = b"enclavefl/receipt-acknowledgement/v1\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledgement:
    """Owner `owner` durably recorded receipt `receipt_sha256` as round `round` and will never replace it."""

    owner: str
    round: int
    receipt_sha256: bytes
    signature: bytes  # ECDSA P-256 SHA-256 (DER) by the owner's enrolled key; empty for a keyless in-process owner


def acknowledgement_transcript(*, owner: str, job_digest: bytes, round_index: int, receipt_sha256: bytes) -> bytes:
    name = owner.encode()
    return b"".join(
        (ACK_DOMAIN, struct.pack(">I", len(name)), name, job_digest, struct.pack(">Q", round_index), receipt_sha256)
    )


def verify_acknowledgement(
    public_key: ec.EllipticCurvePublicKey | None, ack: Acknowledgement, *, receipt: SignedReceipt
) -> None:
    """Raise AcknowledgementRefused unless `ack` signs exactly `receipt` (None: the job enrolls no key for it)."""
    if ack.round != receipt.receipt.round or not hmac.compare_digest(ack.receipt_sha256, receipt.sha256):
        raise AcknowledgementRefused(
            f"{ack.owner!r} signed round {ack.round} receipt {ack.receipt_sha256.hex()[:16]}…, the sealed round is "
            f"{receipt.receipt.round} with receipt {receipt.sha256.hex()[:16]}…"
        )
    if public_key is None:  # keyless owners exist only in process, where the caller is the owner object itself
        return
    transcript = acknowledgement_transcript(
        owner=ack.owner, job_digest=receipt.receipt.job_digest, round_index=ack.round, receipt_sha256=ack.receipt_sha256
    )
    try:
        public_key.verify(ack.signature, transcript, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AcknowledgementRefused(
            f"{ack.owner!r}: the signature over round {ack.round}'s receipt does not verify under its enrolled key"
        ) from None


def release_quorum(enrolled: int) -> int:
    """Signers a release needs besides the contributors: a majority of the enrolled owners (any two intersect)."""
    return enrolled // 2 + 1 if enrolled else 0

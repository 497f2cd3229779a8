"""Two-phase round close: an owner's signature over a sealed round's receipt, and the owner's memory of it.

    ack = sign_acknowledgement(owner_key, owner="alice", receipt=pending)       # after signed_rounds.record(pending)
    verify_acknowledgement(alice_public_key, ack, receipt=pending)              # the enclave, before counting it

A round's aggregate leaves the enclave only after every accepted contributor (and, with enrolled owners, a
majority of them) returned such a signature over the round's sealed receipt. An owner records the receipt
durably before it signs, signs at most one receipt per round, and from then on refuses any node that asks it to
upload for that round again or presents another receipt for it. So no owner's update is in two released
aggregates of one round, and any two signer sets intersect, so two different releases would need an owner to
sign twice. Two different node-signed receipts for one round are themselves evidence (`check_same_round`).
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.receipts import SignedReceipt, verify_receipt
from enclavefl.errors import AcknowledgementRefused, ConflictingReceipts, RoundAlreadySigned

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


def sign_acknowledgement(
    private_key: ec.EllipticCurvePrivateKey, *, owner: str, receipt: SignedReceipt
) -> Acknowledgement:
    """The owner's side; call only after the receipt is recorded durably (SignedRounds.record)."""
    transcript = acknowledgement_transcript(
        owner=owner,
        job_digest=receipt.receipt.job_digest,
        round_index=receipt.receipt.round,
        receipt_sha256=receipt.sha256,
    )
    signature = private_key.sign(transcript, ec.ECDSA(hashes.SHA256()))
    return Acknowledgement(owner=owner, round=receipt.receipt.round, receipt_sha256=receipt.sha256, signature=signature)


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


def check_same_round(first: SignedReceipt, second: SignedReceipt, node_public_key_pem: bytes) -> None:
    """Raise ConflictingReceipts, carrying both, if two valid node-signed receipts name one job and round."""
    if hmac.compare_digest(first.sha256, second.sha256):
        return  # the same receipt, byte for byte: nothing conflicts
    a, b = verify_receipt(first, node_public_key_pem), verify_receipt(second, node_public_key_pem)
    if a.job_digest != b.job_digest or a.round != b.round or hmac.compare_digest(first.sha256, second.sha256):
        return
    raise ConflictingReceipts(
        f"round {a.round}: the node signed two receipts, {first.sha256.hex()[:16]}… and {second.sha256.hex()[:16]}…: "
        "it was run from a copied, rolled-back or deleted state (both receipts are the proof)",
        first=first,
        second=second,
    )


def find_conflicting_receipts(receipts: Iterable[SignedReceipt], node_public_key_pem: bytes) -> None:
    """Anyone holding receipts (owners' states, model owners' chains): ConflictingReceipts on the first fork."""
    by_round: dict[tuple[bytes, int], SignedReceipt] = {}
    for signed in receipts:
        verify_receipt(signed, node_public_key_pem)
        key = (signed.receipt.job_digest, signed.receipt.round)
        known = by_round.setdefault(key, signed)
        check_same_round(known, signed, node_public_key_pem)


class SignedRounds:
    """What one owner signed: at most one receipt per round, remembered before the signature leaves.

    `on_change(receipt)` persists it (PersistentReceiptTracker saves with fsync); it runs before `record` returns.
    """

    def __init__(
        self,
        signed: Mapping[int, SignedReceipt] | None = None,
        *,
        on_change: Callable[[SignedReceipt], None] | None = None,
    ) -> None:
        self._signed = dict(signed or {})
        self._on_change = on_change

    def signed(self, round_index: int) -> SignedReceipt | None:
        return self._signed.get(round_index)

    def all(self) -> tuple[SignedReceipt, ...]:
        return tuple(self._signed[r] for r in sorted(self._signed))

    @property
    def last_round(self) -> int:
        return max(self._signed, default=0)

    def record(self, pending: SignedReceipt, node_public_key_pem: bytes) -> None:
        """Remember `pending` as this owner's receipt of its round (durably); ConflictingReceipts if another is."""
        known = self._signed.get(pending.receipt.round)
        if known is not None:
            check_same_round(known, pending, node_public_key_pem)
            return  # the identical receipt again (the node restarted with its round sealed): sign it again
        self._signed[pending.receipt.round] = pending
        if self._on_change is not None:
            self._on_change(pending)

    def check_chain(self, chain: Iterable[SignedReceipt], node_public_key_pem: bytes) -> None:
        """A node's released chain must carry, at every round this owner signed, the receipt it signed."""
        for released in chain:
            known = self._signed.get(released.receipt.round)
            if known is not None:
                check_same_round(known, released, node_public_key_pem)

    def check_node_holds_signed_round(self, chain_length: int, pending: SignedReceipt | None) -> None:
        """RoundAlreadySigned if the node's state lies before the last round this owner signed.

        An honest node that sealed round s keeps it: it is released (the chain reaches s) or still pending. A node
        whose chain ends before s with another round pending or open was rolled back, deleted or forked.
        """
        last = self.last_round
        if last == 0 or chain_length >= last or (pending is not None and pending.receipt.round == last):
            return
        raise RoundAlreadySigned(
            f"this owner signed receipt {self._signed[last].sha256.hex()[:16]}… for round {last}, but the node's chain "
            f"ends at round {chain_length} without it (a rolled-back, deleted or forked node state): refusing to "
            f"take part, so no second aggregate for round {last} can contain this owner's update"
        )

    def check_may_upload(self, round_index: int) -> None:
        """RoundAlreadySigned if this owner signed `round_index` already: a node asking again replaced that round."""
        known = self._signed.get(round_index)
        if known is not None:
            raise RoundAlreadySigned(
                f"round {round_index}: this owner signed receipt {known.sha256.hex()[:16]}… for it, and the node "
                f"asks for a round-{round_index} upload again (a rolled-back, deleted or forked node state): refusing "
                "to upload, so no second aggregate can contain this owner's update"
            )

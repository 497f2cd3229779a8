"""What owners run over receipts: verify them and their chain, remember it, sign acknowledgements, spot forks.

    head = ReceiptTracker(job_digest=d).observe(chain, node_key_pem)    # verify the chain; refuse a rollback
    ack = sign_acknowledgement(owner_key, owner="alice", receipt=pending)  # after signed_rounds.record(pending)
    check_update_included(receipt, my_commitment)                       # UpdateOmitted unless it lists mine
    check_cohort_claim(receipt.cohort, job_digest=d, round_index=3, size=20, token=t, member=True)  # CohortMismatch

A data owner or model owner keeps the last receipt it verified in a `ReceiptTracker`; a node whose chain head is
older, or that forked, is refused. An owner records a sealed round's receipt durably (`SignedRounds`) before it
signs, signs at most one receipt per round, and refuses any node that asks it to upload for that round again or
presents another receipt for it (core/acknowledgement.py says why). The enclave signs receipts and verifies
acknowledgements; it runs none of this, so this module stays out of its TCB (tests/enclave/test_tcb.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import Acknowledgement, acknowledgement_transcript
from enclavefl.core.cohort import member_commitment
from enclavefl.core.receipts import GENESIS_SHA256, SIGNATURE_DOMAIN, RoundReceipt, SignedReceipt
from enclavefl.errors import (
    CohortMismatch,
    ConflictingReceipts,
    ReceiptError,
    RollbackDetected,
    RoundAlreadySigned,
    UpdateOmitted,
)

COHORT_TOKEN_BYTES = 32  # an owner's round token (enclave/cohort.py: an HMAC-SHA256)


def verify_receipt(signed: SignedReceipt, node_public_key_pem: bytes) -> RoundReceipt:
    """The receipt, if the attested node key signed exactly these body bytes; else ReceiptError.

    An owner checks the same receipts again and again (the chain each round, the receipt it signed against the
    released one), so signatures that verified are remembered, keyed by the exact key, body and signature bytes:
    a failure is never remembered, and any other bytes are verified afresh.
    """
    token = hashlib.sha256(
        b"".join(len(part).to_bytes(8, "big") + part for part in (node_public_key_pem, signed.body, signed.signature))
    ).digest()
    with _VERIFIED_LOCK:
        if token in _VERIFIED:
            return signed.receipt
    try:
        _receipt_key(node_public_key_pem).verify(
            signed.signature, SIGNATURE_DOMAIN + signed.body, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        raise ReceiptError(
            f"round {signed.receipt.round}: receipt signature does not verify under the node key"
        ) from None
    with _VERIFIED_LOCK:
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.pop(next(iter(_VERIFIED)))  # the oldest: it is verified again if it comes back
        _VERIFIED[token] = None
    return signed.receipt


# SHA-256 of (key, body, signature) of the signatures that verified, oldest first (~130 bytes each, bounded).
_VERIFIED: dict[bytes, None] = {}
_VERIFIED_MAX = 20_000
_VERIFIED_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _receipt_key(node_public_key_pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(node_public_key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ReceiptError("the node key is not an ECDSA P-256 key")
    return key


def verify_receipt_chain(
    receipts: Sequence[SignedReceipt], node_public_key_pem: bytes, job_digest: bytes, *, verified_prefix: int = 0
) -> tuple[RoundReceipt, ...]:
    """Check signatures, the job digest, consecutive rounds from 1 and the hash links; raises ReceiptError.

    `verified_prefix`: how many leading receipts are, byte for byte, a chain this caller verified before under
    this key and job (ReceiptTracker); only the links from their last one on are checked again.
    """
    previous = GENESIS_SHA256
    out: list[RoundReceipt] = []
    for expected_round, signed in enumerate(receipts, start=1):
        if expected_round <= verified_prefix:
            previous = signed.sha256
            out.append(signed.receipt)
            continue
        receipt = verify_receipt(signed, node_public_key_pem)
        if not hmac.compare_digest(receipt.job_digest, job_digest):
            raise ReceiptError(f"round {receipt.round}: receipt is for job {receipt.job_digest.hex()[:16]}…")
        if receipt.round != expected_round:
            raise ReceiptError(f"receipt #{expected_round} claims round {receipt.round}: the chain has a gap")
        if not hmac.compare_digest(receipt.previous_sha256, previous):
            raise ReceiptError(f"round {receipt.round}: receipt does not link to the previous receipt")
        if receipt.contributions != len(receipt.update_commitments):
            raise ReceiptError(
                f"round {receipt.round}: {receipt.contributions} contributions but "
                f"{len(receipt.update_commitments)} update commitments"
            )
        previous = signed.sha256
        out.append(receipt)
    return tuple(out)


class ReceiptTracker:
    """Remembers the last receipt an owner verified, and refuses a node whose chain goes backwards or forks."""

    def __init__(self, *, job_digest: bytes) -> None:
        self.job_digest = job_digest
        self._seen: dict[int, bytes] = {}  # round -> receipt hash, every round verified so far
        # the last chain this tracker verified whole (receipt hashes) and under which key: a chain that starts with
        # it is verified from where it differs on (each round an owner sees the same chain plus one receipt)
        self._verified_chain: list[bytes] = []
        self._verified_key = b""

    @property
    def head_round(self) -> int:
        return max(self._seen, default=0)

    def observe(self, receipts: Sequence[SignedReceipt], node_public_key_pem: bytes) -> RoundReceipt | None:
        """Verify `receipts` and remember them; returns the chain head (None for an empty chain)."""
        verified = self._verified_chain if hmac.compare_digest(self._verified_key, node_public_key_pem) else []
        same = 0
        while same < min(len(verified), len(receipts)) and hmac.compare_digest(verified[same], receipts[same].sha256):
            same += 1
        verify_receipt_chain(receipts, node_public_key_pem, self.job_digest, verified_prefix=same)
        self._verified_chain, self._verified_key = [r.sha256 for r in receipts], node_public_key_pem
        head = len(receipts)
        if head < self.head_round:
            raise RollbackDetected(
                f"node presented round {head} chain head, this owner already saw round {self.head_round} > {head}"
            )
        for signed in receipts:
            known = self._seen.get(signed.receipt.round)
            if known is not None and not hmac.compare_digest(known, signed.sha256):
                raise RollbackDetected(
                    f"round {signed.receipt.round}: the node presents another receipt than the one this owner saw "
                    "(its history was rewritten)"
                )
        for signed in receipts:
            self._seen[signed.receipt.round] = signed.sha256
        return receipts[-1].receipt if receipts else None


def check_update_included(receipt: RoundReceipt, commitment: bytes) -> None:
    """Raise UpdateOmitted unless the round's receipt lists this accepted update's commitment."""
    if not any(hmac.compare_digest(commitment, c) for c in receipt.update_commitments):
        raise UpdateOmitted(
            f"round {receipt.round}: the node accepted update {commitment.hex()[:16]}… but its signed receipt "
            f"lists {receipt.contributions} other update(s): the aggregate is not the one this owner contributed to"
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


def check_cohort_claim(
    receipt_cohort: Sequence[bytes] | None,
    *,
    job_digest: bytes,
    round_index: int,
    size: int,
    token: bytes,
    member: bool,
) -> None:
    """CohortMismatch unless the receipt's cohort has the job's size and lists this owner exactly when it was told
    it is a member of round `round_index` (with `token`, from its own status)."""
    if receipt_cohort is None:
        raise CohortMismatch(f"round {round_index}: the job draws cohorts but the receipt commits to none")
    if len(receipt_cohort) != size or len(set(receipt_cohort)) != size:
        raise CohortMismatch(
            f"round {round_index}: the receipt commits to a cohort of {len(set(receipt_cohort))} distinct owner(s), "
            f"the job draws {size}"
        )
    if len(token) != COHORT_TOKEN_BYTES:
        raise CohortMismatch(f"round {round_index}: the node gave this owner no cohort token for the round")
    mine = member_commitment(job_digest=job_digest, round_index=round_index, token=token)
    listed = any(hmac.compare_digest(mine, c) for c in receipt_cohort)
    if listed != member:
        told, found = ("in", "does not list") if member else ("outside", "lists")
        raise CohortMismatch(
            f"round {round_index}: the node told this owner it is {told} the cohort, but the receipt {found} it"
        )

"""Round receipts: what a node signs with its attested key after each round, and how owners check the chain.

A receipt body is canonical JSON (sorted keys, no whitespace, hex for bytes), so its SHA-256 is stable; each
body names the previous body's hash, so the receipts form a chain. A data owner or model owner keeps the last
receipt it verified in a `ReceiptTracker`; a node whose chain head is older, or that forked, is refused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.errors import ReceiptError, RollbackDetected, UpdateOmitted

RECEIPT_FORMAT = "enclavefl/receipt/v2"  # v2: update commitments instead of plain payload hashes
GENESIS_SHA256 = bytes(32)  # "previous receipt" of round 1
_SIGNATURE_DOMAIN = b"enclavefl/receipt-signature/v1\x00"
_KEYS = {
    "format",
    "job_digest",
    "round",
    "previous_sha256",
    "global_model_sha256",
    "contributions",
    "update_commitments",
    "dp",
    "cumulative_epsilon",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundReceipt:
    """The signed claims about one closed round.

    `update_commitments` are the accepted uploads' salted commitments (core/commitments.py), sorted: they carry
    no identities, and without an owner's secret salt they say nothing about its payload (no dictionary test).
    """

    job_digest: bytes
    round: int
    previous_sha256: bytes
    global_model_sha256: bytes
    contributions: int
    update_commitments: tuple[bytes, ...]
    dp: Mapping[str, object] | None = None
    cumulative_epsilon: float | None = None

    def canonical_bytes(self) -> bytes:
        body = {
            "format": RECEIPT_FORMAT,
            "job_digest": self.job_digest.hex(),
            "round": self.round,
            "previous_sha256": self.previous_sha256.hex(),
            "global_model_sha256": self.global_model_sha256.hex(),
            "contributions": self.contributions,
            "update_commitments": sorted(c.hex() for c in self.update_commitments),
            "dp": dict(self.dp) if self.dp is not None else None,
            "cumulative_epsilon": self.cumulative_epsilon,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    def sha256(self) -> bytes:
        return hashlib.sha256(self.canonical_bytes()).digest()

    @classmethod
    def from_canonical_bytes(cls, body: bytes) -> RoundReceipt:
        """Parse a body; refuses anything that is not exactly the canonical form (ReceiptError)."""
        try:
            raw = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReceiptError(f"receipt body is not JSON: {exc}") from None
        if not isinstance(raw, dict) or set(raw) != _KEYS or raw["format"] != RECEIPT_FORMAT:
            raise ReceiptError(f"receipt body does not have the {RECEIPT_FORMAT} fields")
        try:
            receipt = cls(
                job_digest=_hex32(raw["job_digest"]),
                round=_int(raw["round"]),
                previous_sha256=_hex32(raw["previous_sha256"]),
                global_model_sha256=_hex32(raw["global_model_sha256"]),
                contributions=_int(raw["contributions"]),
                update_commitments=tuple(_hex32(c) for c in raw["update_commitments"]),
                dp=raw["dp"],
                cumulative_epsilon=raw["cumulative_epsilon"],
            )
        except (TypeError, ValueError) as exc:
            raise ReceiptError(f"receipt body has a malformed field: {exc}") from None
        if receipt.canonical_bytes() != body:
            raise ReceiptError("receipt body is not in canonical form")
        return receipt


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedReceipt:
    """Canonical body bytes and the node's ECDSA P-256 SHA-256 signature (DER) over them."""

    body: bytes
    signature: bytes
    receipt: RoundReceipt = field(compare=False)
    # SHA-256 of `body`, computed once: owners compare receipt hashes along the whole chain every round
    sha256: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.body).digest())

    @classmethod
    def parse(cls, body: bytes, signature: bytes) -> SignedReceipt:
        """From wire bytes; the signature is checked by `verify_receipt`, not here."""
        return cls(body=bytes(body), signature=bytes(signature), receipt=RoundReceipt.from_canonical_bytes(body))


def sign_receipt(receipt: RoundReceipt, private_key: ec.EllipticCurvePrivateKey) -> SignedReceipt:
    body = receipt.canonical_bytes()
    signature = private_key.sign(_SIGNATURE_DOMAIN + body, ec.ECDSA(hashes.SHA256()))
    return SignedReceipt(body=body, signature=signature, receipt=receipt)


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
            signed.signature, _SIGNATURE_DOMAIN + signed.body, ec.ECDSA(hashes.SHA256())
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


def _hex32(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"expected 64 hex digits, got {value!r}")
    return bytes.fromhex(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def check_update_included(receipt: RoundReceipt, commitment: bytes) -> None:
    """Raise UpdateOmitted unless the round's receipt lists this accepted update's commitment."""
    if not any(hmac.compare_digest(commitment, c) for c in receipt.update_commitments):
        raise UpdateOmitted(
            f"round {receipt.round}: the node accepted update {commitment.hex()[:16]}… but its signed receipt "
            f"lists {receipt.contributions} other update(s): the aggregate is not the one this owner contributed to"
        )

"""Round receipts: what a node signs with its attested key after each round.

    signed = sign_receipt(RoundReceipt(job_digest=..., round=3, ...), node_key)   # the enclave, at the seal
    SignedReceipt.parse(body, signature)                                          # from the wire

A receipt body is canonical JSON (sorted keys, no whitespace, hex for bytes), so its SHA-256 is stable; each
body names the previous body's hash, so the receipts form a chain. How owners verify and track that chain is
core/receipt_checks.py's: the enclave signs receipts, it never checks them, so that code stays out of its TCB.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.errors import ReceiptError

RECEIPT_FORMAT = "enclavefl/receipt/v2"  # v2: update commitments instead of plain payload hashes
GENESIS_SHA256 = bytes(32)  # "previous receipt" of round 1
SIGNATURE_DOMAIN = b"enclavefl/receipt-signature/v1\x00"
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
_OPTIONAL_KEYS = {"cohort"}  # present only in the receipts of a job that draws cohorts


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundReceipt:
    """The signed claims about one closed round.

    `update_commitments` are the accepted uploads' salted commitments (core/commitments.py), sorted: they carry
    no identities, and without an owner's secret salt they say nothing about its payload (no dictionary test).
    `cohort` (jobs with `clients_per_round`) lists, sorted, a hash of each cohort member's secret round token
    (core/cohort.py): M entries that name nobody; each owner checks its own.
    """

    job_digest: bytes
    round: int
    previous_sha256: bytes
    global_model_sha256: bytes
    contributions: int
    update_commitments: tuple[bytes, ...]
    dp: Mapping[str, object] | None = None
    cumulative_epsilon: float | None = None
    cohort: tuple[bytes, ...] | None = None

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
        if self.cohort is not None:  # only then: a job without cohorts signs the receipts it always did
            body["cohort"] = sorted(c.hex() for c in self.cohort)
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
        if (
            not isinstance(raw, dict)
            or not _KEYS <= set(raw) <= _KEYS | _OPTIONAL_KEYS
            or raw["format"] != RECEIPT_FORMAT
        ):
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
                cohort=tuple(_hex32(c) for c in raw["cohort"]) if "cohort" in raw else None,
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
    signature = private_key.sign(SIGNATURE_DOMAIN + body, ec.ECDSA(hashes.SHA256()))
    return SignedReceipt(body=body, signature=signature, receipt=receipt)


def _hex32(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"expected 64 hex digits, got {value!r}")
    return bytes.fromhex(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value

"""Where a model came from: a receipts file that carries the attestation of the key that signed its chain.

A receipt chain alone proves only that *some* key signed it: anyone can make a key and sign a chain for any
model. So the model owner's `model.receipts.json` (format v2) also embeds the evidence it verified when it
attested the node: the DCAP quote, its collateral, and the inputs of the quote's report data (the node key's
SPKI hash, the job digest, the model owner's nonce), plus the time it verified them. A third party then checks,
without talking to anyone (`enclavefl receipts verify`, `verify_provenance`):

1. the quote and collateral verify (dcap-qvl) and the enclave satisfies the third party's own policy;
2. the quote's report data binds exactly this key, this job digest and the recorded nonce;
3. every receipt is signed by that key, for that job, linked from round 1;
4. the last receipt names the final model's hash (and the model given, if any); with the job spec, that the
   chain has all of the job's rounds.

The nonce only made the evidence fresh for the model owner; to a third party it is one more report-data input.

When: the evidence is judged at the present time by default (`now=` picks another time), so a platform whose TCB
was revoked since, or whose embedded collateral has expired, is refused. Collateral lives about a month, so an
older file needs current collateral (`collateral=`, e.g. a PCCS or a bundle the host agent keeps; Intel signs it,
anyone may carry it), which also carries any TCB recovery since. Judging the evidence as of the time the model
owner verified it (`insecure_at_attestation_time=True`) only tells that it was acceptable *then*: a revocation
since is not seen, so the name says insecure.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization

from enclavefl.core.job import JobSpec
from enclavefl.core.receipt_checks import verify_receipt_chain
from enclavefl.core.receipts import RoundReceipt, SignedReceipt
from enclavefl.errors import ConfigError, ReceiptError
from enclavefl.tee.binding import spki_sha256
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.evidence import AttestationBundle, Evidence, TeeKind
from enclavefl.tee.verify.claims import verify_evidence
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.report_data import check_report_data
from enclavefl.tee.verify.verified import VerifiedEnclave

RECEIPTS_FORMAT: Final = "enclavefl/receipt-chain/v2"  # v2: with the attestation of the chain's key


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainAttestation:
    """The evidence the model owner verified for the chain's key, and what its report data binds."""

    bundle: AttestationBundle
    nonce: bytes
    attested_at: int  # unix seconds at which the model owner verified it


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptsFile:
    attestation: ChainAttestation
    final_model_sha256: bytes
    receipts: tuple[SignedReceipt, ...]

    @property
    def node_public_key_pem(self) -> bytes:
        return self.attestation.bundle.node_public_key_pem


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """What a verified receipts file establishes."""

    enclave: VerifiedEnclave
    job_digest: bytes
    receipts: tuple[RoundReceipt, ...]
    final_model_sha256: bytes


def receipts_file_text(receipts: ReceiptsFile) -> str:
    att = receipts.attestation
    doc = {
        "format": RECEIPTS_FORMAT,
        "node_public_key_pem": receipts.node_public_key_pem.decode(),
        "final_model_sha256": receipts.final_model_sha256.hex(),
        "attestation": {
            "tee": att.bundle.evidence.tee.value,
            "quote": base64.b64encode(att.bundle.evidence.quote).decode(),
            "collateral_json": att.bundle.evidence.collateral_json,
            "node_spki_sha256": att.bundle.node_spki_sha256.hex(),
            "job_digest": att.bundle.job_digest.hex(),
            "nonce": att.nonce.hex(),
            "attested_at": att.attested_at,
        },
        "receipts": [
            {"body": s.body.decode(), "signature": s.signature.hex(), "sha256": s.sha256.hex()}
            for s in receipts.receipts
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def read_receipts_file(path: Path) -> ReceiptsFile:
    """Parse a v2 receipts file; ReceiptError names what is missing or malformed (nothing is verified yet)."""
    try:
        doc: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReceiptError(f"{path}: not a receipts file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != RECEIPTS_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise ReceiptError(
            f"{path}: format {found!r}, expected {RECEIPTS_FORMAT!r} (files without attestation prove nothing "
            "about where a model came from)"
        )
    try:
        att = doc["attestation"]
        bundle = AttestationBundle(
            evidence=Evidence(
                tee=TeeKind(att["tee"]),
                quote=base64.b64decode(att["quote"], validate=True),
                collateral_json=_str(att["collateral_json"]),
            ),
            node_spki_sha256=bytes.fromhex(att["node_spki_sha256"]),
            job_digest=bytes.fromhex(att["job_digest"]),
            node_public_key_pem=_str(doc["node_public_key_pem"]).encode(),
        )
        attested_at = att["attested_at"]
        if isinstance(attested_at, bool) or not isinstance(attested_at, int) or attested_at <= 0:
            raise ValueError(f"attested_at must be a positive integer, got {attested_at!r}")
        receipts = tuple(
            SignedReceipt.parse(_str(r["body"]).encode(), bytes.fromhex(r["signature"])) for r in doc["receipts"]
        )
        return ReceiptsFile(
            attestation=ChainAttestation(bundle=bundle, nonce=bytes.fromhex(att["nonce"]), attested_at=attested_at),
            final_model_sha256=bytes.fromhex(doc["final_model_sha256"]),
            receipts=receipts,
        )
    except ReceiptError as exc:
        raise ReceiptError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReceiptError(f"{path}: malformed receipts file: {type(exc).__name__}: {exc}") from None


def verify_provenance(
    receipts: ReceiptsFile,
    *,
    policy: AttestationPolicy,
    job: JobSpec | None = None,
    final_model_sha256: bytes | None = None,
    now: int | None = None,
    collateral: CollateralSource | None = None,
    insecure_at_attestation_time: bool = False,
) -> Provenance:
    """Checks 1-4 of the module docstring. Raises the precise AttestationError leaf or ReceiptError.

    `job`: the agreed job spec (its digest must be the attested one and the chain must have all its rounds);
    without it the attested job digest is reported for the caller to compare. `now`: when to judge the evidence
    (default: the present). `collateral`: judge the quote with collateral from this source, not the embedded one.
    `insecure_at_attestation_time`: judge it as of when the model owner verified it (a revocation since is not
    seen); exclusive with `now`.
    """
    att = receipts.attestation
    bundle = att.bundle
    when = verification_time(att.attested_at, now=now, insecure_at_attestation_time=insecure_at_attestation_time)
    evidence = bundle.evidence
    if collateral is not None:
        evidence = dataclasses.replace(evidence, collateral_json=collateral.collateral_for(evidence.quote))
    enclave = verify_evidence(evidence, policy=policy, now=when)
    try:
        key = serialization.load_pem_public_key(receipts.node_public_key_pem)
    except ValueError:
        raise ReceiptError("the receipts file's node key is not a readable PEM public key") from None
    if len(att.nonce) != 32:
        raise ReceiptError(f"the recorded nonce is {len(att.nonce)} bytes, expected 32")
    # The key that signs the chain must be the key the quote binds, for the job it binds.
    check_report_data(
        enclave.report_data,
        claimed_tls_spki_sha256=bundle.node_spki_sha256,
        claimed_job_digest=bundle.job_digest,
        actual_tls_spki_sha256=spki_sha256(key),
        expected_job_digest=job.digest() if job is not None else bundle.job_digest,
        nonce=att.nonce,
    )
    chain = verify_receipt_chain(receipts.receipts, receipts.node_public_key_pem, bundle.job_digest)
    if not chain:
        raise ReceiptError("the receipts file holds no receipt: no model was released")
    if job is not None and len(chain) != job.rounds:
        raise ReceiptError(f"the chain has {len(chain)} receipts, the job has {job.rounds} rounds")
    _same_model(chain[-1].global_model_sha256, receipts.final_model_sha256, "the file's final model hash")
    if final_model_sha256 is not None:
        _same_model(chain[-1].global_model_sha256, final_model_sha256, "the given model's hash")
    return Provenance(
        enclave=enclave, job_digest=bundle.job_digest, receipts=chain, final_model_sha256=chain[-1].global_model_sha256
    )


def verification_time(attested_at: int, *, now: int | None, insecure_at_attestation_time: bool) -> int:
    """When a receipts file's evidence is judged: `now`, else the present; `attested_at` only when asked."""
    if insecure_at_attestation_time:
        if now is not None:
            raise ConfigError("give either a verification time (now) or insecure_at_attestation_time, not both")
        return attested_at
    return int(time.time()) if now is None else now


def attested_receipts(
    bundle: AttestationBundle | None, *, nonce: bytes, attested_at: int, signed: Sequence[SignedReceipt], final: bytes
) -> ReceiptsFile:
    """The receipts file for a chain signed by the key `bundle` attests (ReceiptError if there is no evidence)."""
    if bundle is None or len(nonce) != 32 or attested_at <= 0:
        raise ReceiptError("no verified attestation of the node is at hand: the receipts file would prove nothing")
    return ReceiptsFile(
        attestation=ChainAttestation(bundle=bundle, nonce=nonce, attested_at=attested_at),
        final_model_sha256=final,
        receipts=tuple(signed),
    )


def _same_model(signed: bytes, other: bytes, what: str) -> None:
    if not hmac.compare_digest(signed, other):
        raise ReceiptError(
            f"{what} ({other.hex()[:16]}…) is not the model the last receipt signs ({signed.hex()[:16]}…)"
        )


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value

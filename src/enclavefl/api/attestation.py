"""Attestation for operators and auditors: verify a DCAP quote, an evidence bundle or a receipts file offline.

    claims = verify_quote(quote_bytes, collateral_json, policy=load_policy("policy.toml"))   # VerifiedEnclave
    verdict = examine_quote(quote_bytes, collateral_json, policy=None)   # the claims even when refused
    provenance = verify_receipts("model.receipts.json", policy=policy, job=job)

Every refusal is the precise AttestationError leaf (MrEnclaveMismatch, TcbStatusRefused, ...); nothing here
returns a bool.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from enclavefl.core.job import JobSpec
from enclavefl.errors import AttestationError
from enclavefl.owner.provenance import Provenance, read_receipts_file, verify_provenance
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.verify.claims import verify_claims
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.quote import parse_quote
from enclavefl.tee.verify.verified import VerifiedEnclave


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteVerdict:
    """What verifying a quote found: its authentic claims (None when they did not verify) and the refusal, if any."""

    claims: VerifiedEnclave | None
    error: AttestationError | None
    policy: AttestationPolicy | None
    now: int

    @property
    def accepted(self) -> bool:
        """True only when the claims verified and a policy accepted them."""
        return self.error is None and self.policy is not None and self.claims is not None


def evidence_from_quote(quote: bytes, collateral_json: str) -> Evidence:
    """A raw DCAP quote and dcap-qvl's QuoteCollateralV3 JSON (QuoteFormatError when the quote does not parse)."""
    return Evidence(tee=parse_quote(quote).tee, quote=quote, collateral_json=collateral_json)


def examine_evidence(evidence: Evidence, *, policy: AttestationPolicy | None, now: int | None = None) -> QuoteVerdict:
    """Verify the evidence's signatures and collateral at `now` (default: the current time), then apply `policy`.

    A refusal is returned in the verdict, with the claims when they verified; an unusable policy raises ConfigError.
    """
    when = int(time.time()) if now is None else now
    if policy is not None:
        policy.require_usable()
    claims: VerifiedEnclave | None = None
    try:
        root = policy.simulation_root_ca_der if policy is not None else None
        claims = verify_claims(evidence, now=when, simulation_root_ca_der=root)
        if policy is not None:
            policy.check(claims, now=when)
    except AttestationError as exc:
        return QuoteVerdict(claims=claims, error=exc, policy=policy, now=when)
    return QuoteVerdict(claims=claims, error=None, policy=policy, now=when)


def examine_quote(
    quote: bytes, collateral_json: str, *, policy: AttestationPolicy | None, now: int | None = None
) -> QuoteVerdict:
    """`examine_evidence` for a raw quote and its collateral; a quote that does not parse is a refusal."""
    try:
        evidence = evidence_from_quote(quote, collateral_json)
    except AttestationError as exc:
        return QuoteVerdict(claims=None, error=exc, policy=policy, now=int(time.time()) if now is None else now)
    return examine_evidence(evidence, policy=policy, now=now)


def verify_evidence(evidence: Evidence, *, policy: AttestationPolicy, now: int | None = None) -> VerifiedEnclave:
    """The verified claims, accepted by `policy`; else the precise AttestationError leaf is raised."""
    verdict = examine_evidence(evidence, policy=policy, now=now)
    if verdict.error is not None:
        raise verdict.error
    assert verdict.claims is not None
    return verdict.claims


def verify_quote(
    quote: bytes, collateral_json: str, *, policy: AttestationPolicy, now: int | None = None
) -> VerifiedEnclave:
    """`verify_evidence` for a raw DCAP quote and its collateral JSON."""
    return verify_evidence(evidence_from_quote(quote, collateral_json), policy=policy, now=now)


def verify_receipts(
    path: str | os.PathLike[str],
    *,
    policy: AttestationPolicy,
    job: JobSpec | None = None,
    final_model_sha256: bytes | None = None,
    now: int | None = None,
    collateral: CollateralSource | None = None,
    insecure_at_attestation_time: bool = False,
) -> Provenance:
    """A receipts file (from `ModelOwnerClient.download`): its chain verifies under a key whose embedded attestation
    `policy` accepts, for `job` (all its rounds), ending with `final_model_sha256` when given.

    The evidence is judged at `now` (default: the present), with `collateral` when given (current collateral for
    a file older than the embedded collateral's month); `insecure_at_attestation_time=True` judges it as of when
    the model owner verified it instead, blind to a revocation since. Raises an AttestationError leaf or
    ReceiptError."""
    return verify_provenance(
        read_receipts_file(Path(path)),
        policy=policy,
        job=job,
        final_model_sha256=final_model_sha256,
        now=now,
        collateral=collateral,
        insecure_at_attestation_time=insecure_at_attestation_time,
    )

"""Verify attestation evidence: dcap-qvl for signatures and collateral, then the data owner's policy.

    verified = verify_evidence(evidence, policy=policy, now=now)   # raises, or returns accepted claims

Hardware quotes are checked against Intel's root (built into dcap-qvl). Quotes whose PCK chain comes
from enclavefl's INSECURE simulation are refused first, unless the policy `allow_simulation` with
that simulated platform's root CA, the only anchor they are then checked against.

dcap-qvl 0.7 raises ValueError("Verification failed: ...") for every failure; `_refusal` maps its
messages to our tree (found by experiment on the real vectors, see tests/tee/test_verify_vectors.py):
    "...expired..." (CrlExpired {..}, CertExpired, "TCBInfo expired", "QE Identity expired")
                                              -> CollateralExpired
    "Debug mode is enabled"                   -> DebugEnclaveRefused (dcap-qvl refuses them whatever the policy)
    "TCB status is invalid: Revoked"          -> TcbStatusRefused
    "TCBInfo issue date is in the future", "QE Identity issue date is in the future"
                                              -> verified again at the latest issue date if that is at most
                                                 ISSUE_DATE_SKEW_SECONDS after now, else CollateralFromTheFuture
    anything else (e.g. "ISV enclave report signature is invalid", "Signature is invalid for qe_report
    in quote", "QE report hash mismatch", "Failed to decode quote")
                                              -> QuoteVerificationError carrying dcap-qvl's message
A simulated quote whose PCK chain does not come from the policy's simulation root is refused before dcap-qvl
(which would report a CRL or certificate parse error) as SimulationRootMismatch.

Clock skew. Collateral fetched seconds ago on the node (or by its agent) carries an issue date from the node's
side of the world; a verifier whose clock is a little behind would see it "issued in the future". Issue dates
get ISSUE_DATE_SKEW_SECONDS of tolerance; expiry gets none: the quote is then verified at the latest issue
date, a moment after `now`, so every nextUpdate and certificate expiry is checked at a later time than `now`,
never an earlier one. CRLs' thisUpdate is not checked by dcap-qvl (found by experiment).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Final

import dcap_qvl
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from enclavefl.errors import (
    AttestationError,
    CollateralExpired,
    CollateralFromTheFuture,
    DebugEnclaveRefused,
    QuoteFormatError,
    QuoteVerificationError,
    SimulationNotAllowed,
    SimulationRootMismatch,
    TcbStatusRefused,
)
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.quote import ParsedQuote, SgxReportBody, parse_quote
from enclavefl.tee.verify.verified import VerifiedEnclave

ISSUE_DATE_SKEW_SECONDS: Final = 300
"""How far a collateral issue date may lie after the verifier's `now` (clocks that differ; docs/gramine.md)."""
_FUTURE_ISSUE = "issue date is in the future"

SIMULATION_ROOT_MARKER = "enclavefl INSECURE simulation"
"""Every simulated platform's root CA has this in its subject CN; Intel's root never does."""

_SIMULATION_REFUSED = "evidence comes from the INSECURE simulation backend; this policy does not allow_simulation"


def verify_evidence(evidence: Evidence, *, policy: AttestationPolicy, now: int) -> VerifiedEnclave:
    """Verify evidence at `now` (unix seconds) and apply `policy`; return only when both accept.

    Order: simulation gate, policy usable, quote and collateral (dcap-qvl), then the policy's checks.
    """
    root = policy.simulation_root_ca_der
    quote, simulated = _parse_and_gate(evidence, simulation_root_ca_der=root)
    policy.require_usable()
    verified = _verify_parsed(evidence, quote, simulated=simulated, now=now, simulation_root_ca_der=root)
    policy.check(verified, now=now)
    return verified


def verify_claims(evidence: Evidence, *, now: int, simulation_root_ca_der: bytes | None) -> VerifiedEnclave:
    """Verify signatures and collateral only: the claims are authentic, NOT accepted by any policy.

    Simulated evidence needs `simulation_root_ca_der` (else SimulationNotAllowed, before any other check).
    """
    quote, simulated = _parse_and_gate(evidence, simulation_root_ca_der=simulation_root_ca_der)
    return _verify_parsed(evidence, quote, simulated=simulated, now=now, simulation_root_ca_der=simulation_root_ca_der)


def _parse_and_gate(evidence: Evidence, *, simulation_root_ca_der: bytes | None) -> tuple[ParsedQuote, bool]:
    """Parse the quote and tell whether it is simulated; refuse it then unless a simulation root is given."""
    quote = parse_quote(evidence.quote)
    simulated = _is_simulated(quote)
    if simulated and simulation_root_ca_der is None:
        raise SimulationNotAllowed(_SIMULATION_REFUSED)
    if quote.tee is not evidence.tee:
        raise QuoteFormatError(f"evidence says {evidence.tee} but the quote is a {quote.tee} quote")
    return quote, simulated


def _verify_parsed(
    evidence: Evidence, quote: ParsedQuote, *, simulated: bool, now: int, simulation_root_ca_der: bytes | None
) -> VerifiedEnclave:
    """dcap-qvl over the quote and collateral: Intel's root, or the simulation root for simulated quotes."""
    try:
        collateral = dcap_qvl.QuoteCollateralV3.from_json(evidence.collateral_json)
    except ValueError as exc:
        raise QuoteFormatError(f"collateral is not dcap-qvl QuoteCollateralV3 JSON: {exc}") from exc
    if simulated:
        assert simulation_root_ca_der is not None  # _parse_and_gate refused simulated evidence without one
        _check_simulation_root(quote, simulation_root_ca_der)

    def dcap_verify(at: int) -> dcap_qvl.VerifiedReport:
        if simulated:
            return dcap_qvl.verify_with_root_ca(evidence.quote, collateral, simulation_root_ca_der, at)
        return dcap_qvl.verify(evidence.quote, collateral, at)

    try:
        try:
            report = dcap_verify(now)
        except ValueError as exc:
            if _FUTURE_ISSUE not in str(exc):
                raise
            report = dcap_verify(_skew_tolerated_time(evidence.collateral_json, now=now, refusal=str(exc)))
    except ValueError as exc:
        raise _refusal(str(exc)) from exc
    return _verified_enclave(
        quote,
        tcb_status=str(report.status),
        advisory_ids=tuple(str(a) for a in report.advisory_ids),
        simulated=simulated,
        collateral_issued_at=_collateral_issued_at(evidence.collateral_json),
    )


def _skew_tolerated_time(collateral_json: str, *, now: int, refusal: str) -> int:
    """The latest issue date, if it is at most ISSUE_DATE_SKEW_SECONDS after `now`; else CollateralFromTheFuture.

    The dates are read before their signatures are checked; the caller verifies again at the returned time,
    which checks them (and every expiry, at a time later than `now`).
    """
    latest = _collateral_issue_dates(collateral_json)
    if latest is None:
        raise CollateralFromTheFuture(f"dcap-qvl: {refusal}, and the collateral's issue dates are unreadable")
    ahead = max(latest) - now
    if ahead > ISSUE_DATE_SKEW_SECONDS:
        raise CollateralFromTheFuture(
            f"collateral issued {ahead} s after this verifier's clock (now={now}); up to "
            f"{ISSUE_DATE_SKEW_SECONDS} s of clock skew is tolerated: check that both clocks are synchronised "
            f"(NTP). dcap-qvl: {refusal}"
        )
    return max(now, *latest)


def _refusal(message: str) -> AttestationError:
    """Map one dcap-qvl failure message to the precise error (table in the module docstring)."""
    if "Debug mode" in message:
        return DebugEnclaveRefused(f"dcap-qvl refuses debug enclaves whatever the policy: {message}")
    if "TCB status is invalid: Revoked" in message:
        return TcbStatusRefused(f"the platform's TCB is revoked (never accepted): {message}")
    if "expired" in message.lower():
        return CollateralExpired(f"collateral or a certificate is past its validity at now: {message}")
    return QuoteVerificationError(f"dcap-qvl refused the quote: {message}")


def _check_simulation_root(quote: ParsedQuote, root_der: bytes) -> None:
    """SimulationRootMismatch unless the quote's PCK chain holds, or is issued by, the policy's simulation root."""
    try:
        root = x509.load_der_x509_certificate(root_der)
        chain = x509.load_pem_x509_certificates(quote.pck_chain_pem or b"")
    except ValueError:
        return  # dcap-qvl refuses an unreadable chain with its own message
    root_key = root.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    for cert in chain:
        if cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == root_key:
            return
    try:
        chain[-1].verify_directly_issued_by(root)
        return
    except (ValueError, TypeError, InvalidSignature):
        pass
    raise SimulationRootMismatch(
        "this policy's simulation root is not the one that signed the quote: the policy trusts root "
        f"{hashlib.sha256(root_der).hexdigest()[:16]}, the quote's chain ends at {_chain_top(chain)}. Get the "
        "policy written for the node's platform (`enclavefl node policy --platform-dir` on the node's platform "
        "directory)"
    )


def _chain_top(chain: list[x509.Certificate]) -> str:
    """The chain's root by fingerprint (simulated roots all share one name), or its issuer's name."""
    if not chain:
        return "no certificate"
    top = chain[-1]
    if top.issuer == top.subject:
        return f"root {hashlib.sha256(top.public_bytes(Encoding.DER)).hexdigest()[:16]}"
    return f"a certificate issued by {top.issuer.rfc4514_string()}"


def _is_simulated(quote: ParsedQuote) -> bool:
    """True when a certificate of the embedded PCK chain names the INSECURE simulation."""
    if quote.pck_chain_pem is None:
        return False
    try:
        chain = x509.load_pem_x509_certificates(quote.pck_chain_pem)
    except ValueError:
        return False  # dcap-qvl will refuse the chain with its own message
    marker = SIMULATION_ROOT_MARKER.casefold()
    for cert in chain:
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            value = attribute.value
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            if marker in text.casefold():
                return True
    return False


def _collateral_issued_at(collateral_json: str) -> int | None:
    """Oldest issueDate of the signed TCB info and QE identity (they were verified by dcap-qvl)."""
    dates = _collateral_issue_dates(collateral_json)
    return None if dates is None else min(dates)


def _collateral_issue_dates(collateral_json: str) -> tuple[int, int] | None:
    """issueDate of the TCB info and of the QE identity, unix seconds (None if unreadable)."""
    try:
        outer = json.loads(collateral_json)
        tcb, qe = (json.loads(outer[key])["issueDate"] for key in ("tcb_info", "qe_identity"))
        return int(datetime.fromisoformat(tcb).timestamp()), int(datetime.fromisoformat(qe).timestamp())
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _verified_enclave(
    quote: ParsedQuote,
    *,
    tcb_status: str,
    advisory_ids: tuple[str, ...],
    simulated: bool,
    collateral_issued_at: int | None,
) -> VerifiedEnclave:
    body = quote.body
    if isinstance(body, SgxReportBody):
        return VerifiedEnclave(
            tee=quote.tee,
            mrenclave=body.mrenclave,
            mrsigner=body.mrsigner,
            isv_prod_id=body.isv_prod_id,
            isv_svn=body.isv_svn,
            debug=body.debug,
            tcb_status=tcb_status,
            advisory_ids=advisory_ids,
            report_data=body.report_data,
            mr_td=None,
            rtmrs=None,
            simulated=simulated,
            collateral_issued_at=collateral_issued_at,
        )
    return VerifiedEnclave(
        tee=quote.tee,
        mrenclave=None,
        mrsigner=None,
        isv_prod_id=None,
        isv_svn=None,
        debug=body.debug,
        tcb_status=tcb_status,
        advisory_ids=advisory_ids,
        report_data=body.report_data,
        mr_td=body.mr_td,
        rtmrs=body.rtmrs,
        mr_config_id=body.mr_config_id,
        simulated=simulated,
        collateral_issued_at=collateral_issued_at,
    )

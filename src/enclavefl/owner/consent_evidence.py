"""The enclave's attestation evidence, decoded for a person: measurements, SVNs, TCB, debug, what report data binds.

    evidence = AttestedEvidence(verified=claims, bundle=bundle, nonce=nonce, attested_at=now, source="HOST:7443")
    section = evidence_section(evidence, job)      # part of the consent summary (owner/consent.py)

Only evidence that verified (signatures, collateral, the caller's policy, the report-data binding) reaches this
module: it shows what was checked, it checks nothing itself. The quote's bytes are re-read here only for the
fields `VerifiedEnclave` leaves out (CPU SVN, QE and PCE SVNs, attributes).
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass

from enclavefl.core.job import JobSpec
from enclavefl.owner.consent_rows import ConsentRow, ConsentSection
from enclavefl.tee.binding import REPORT_DATA_DOMAIN
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.tee.verify.quote import SgxReportBody, TdxReportBody, parse_quote
from enclavefl.tee.verify.verified import VerifiedEnclave


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestedEvidence:
    """Evidence that verified under the caller's policy, with the inputs of its report data."""

    verified: VerifiedEnclave
    bundle: AttestationBundle
    nonce: bytes
    attested_at: int  # unix seconds at which it verified
    source: str  # where it came from: the node's address, or a receipts file


def _row(key: str, label: str, value: str) -> ConsentRow:
    return ConsentRow(key=key, label=label, value=value)


def _hex(value: bytes | None) -> str:
    return value.hex() if value is not None else "-"


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def evidence_section(evidence: AttestedEvidence, job: JobSpec) -> ConsentSection:
    v = evidence.verified
    rows = [
        _row("source", "verified from", evidence.source),
        _row("verified_at", "verified at", _when(evidence.attested_at)),
        _row("tee", "TEE", v.tee.value.upper() + (" (INSECURE simulation)" if v.simulated else "")),
    ]
    body = parse_quote(evidence.bundle.evidence.quote)
    rows += _measurements(v, body.body)
    rows += [
        _row("qe_svn", "QE SVN", str(body.qe_svn)),
        _row("pce_svn", "PCE SVN", str(body.pce_svn)),
        _row("debug", "debug enclave", "YES: its memory is readable by the host" if v.debug else "no"),
        _row("tcb_status", "TCB status", v.tcb_status),
        _row("advisories", "advisories", ", ".join(v.advisory_ids) or "none"),
        _row("collateral_issued_at", "collateral issued", _when(v.collateral_issued_at)),
    ]
    rows += _binding(evidence, job)
    return ConsentSection(
        key="evidence",
        title="Attested enclave",
        rows=tuple(rows),
        note="the quote verified with dcap-qvl and satisfied your attestation policy",
    )


def _measurements(v: VerifiedEnclave, body: SgxReportBody | TdxReportBody) -> list[ConsentRow]:
    if isinstance(body, SgxReportBody):
        return [
            _row("mrenclave", "MRENCLAVE (the code)", _hex(v.mrenclave)),
            _row("mrsigner", "MRSIGNER (who signed it)", _hex(v.mrsigner)),
            _row("isv_prod_id", "ISV product id", str(v.isv_prod_id)),
            _row("isv_svn", "ISV SVN", str(v.isv_svn)),
            _row("cpu_svn", "CPU SVN", body.cpu_svn.hex()),
            _row("attributes", "attributes (flags, xfrm)", f"{body.attributes_flags:#018x}, {body.xfrm:#018x}"),
        ]
    rtmrs = v.rtmrs or (b"", b"", b"", b"")
    return [
        _row("mr_td", "MRTD (the TD's initial contents)", _hex(v.mr_td)),
        *(_row(f"rtmr{i}", f"RTMR{i}", value.hex()) for i, value in enumerate(rtmrs)),
        _row("mr_config_id", "MRCONFIGID", _hex(v.mr_config_id)),
        _row("tee_tcb_svn", "TEE TCB SVN", body.tee_tcb_svn.hex()),
    ]


def _binding(evidence: AttestedEvidence, job: JobSpec) -> list[ConsentRow]:
    bundle = evidence.bundle
    same_job = hmac.compare_digest(bundle.job_digest, job.digest())
    return [
        _row("report_data", "report data", evidence.verified.report_data.hex()),
        _row(
            "binds",
            "report data binds",
            f"SHA-256({REPORT_DATA_DOMAIN.decode()} || 0x00 || node key || job digest || nonce) || nonce",
        ),
        _row("node_key", "node key (SPKI SHA-256)", bundle.node_spki_sha256.hex()),
        _row(
            "job_digest",
            "job digest bound",
            bundle.job_digest.hex() + (" = this job" if same_job else " (NOT this job's digest)"),
        ),
        _row("nonce", "nonce bound", evidence.nonce.hex()),
    ]

"""What verifying a quote establishes: the claims of a quote whose signatures and collateral verified.

    verified = verify_quote(quote, collateral_json, policy=policy)    # a VerifiedEnclave, or an AttestationError
    verified.mrenclave, verified.tcb_status, verified.report_data

Owners, the model owner and auditors hold these; the enclave only produces evidence (tee/evidence.py), so this
value type stays out of its import closure.
"""

from __future__ import annotations

from dataclasses import dataclass

from enclavefl.tee.evidence import TeeKind


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedEnclave:
    """Claims of a quote whose signatures and collateral verified at `now`.

    SGX fills mrenclave/mrsigner/isv_*; TDX fills mr_td/rtmrs; the others are None.
    """

    tee: TeeKind
    mrenclave: bytes | None
    mrsigner: bytes | None
    isv_prod_id: int | None
    isv_svn: int | None
    debug: bool
    tcb_status: str
    advisory_ids: tuple[str, ...]
    report_data: bytes
    mr_td: bytes | None
    rtmrs: tuple[bytes, bytes, bytes, bytes] | None
    mr_config_id: bytes | None = None  # TDX: the VMM-supplied configuration id (zeros when unused)
    simulated: bool
    collateral_issued_at: int | None
    """Unix time of the oldest issueDate among TCB info and QE identity, if readable."""

"""Attestation evidence as it travels (a quote, its collateral, the TEE kind); what verifying it establishes is
tee/verify/verified.py's VerifiedEnclave."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TeeKind(enum.StrEnum):
    SGX = "sgx"
    TDX = "tdx"


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A DCAP quote plus the collateral needed to verify it offline.

    `collateral_json` is dcap-qvl's `QuoteCollateralV3` JSON. Collateral is signed by Intel (or,
    in simulation, by the simulated platform's root), so it may come from anyone: the host agent,
    a cache, a file.
    """

    tee: TeeKind
    quote: bytes
    collateral_json: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationBundle:
    """The node's answer to a data owner's nonce: evidence plus the claims its report data binds.

    `node_spki_sha256` is the SHA-256 of the node's TLS (or, in process, signing) public key in SPKI DER form;
    `job_digest` is the digest of the job the node runs. Both are checked against the quote by
    `enclavefl.tee.verify.report_data.check_report_data`, never trusted on their own.
    """

    evidence: Evidence
    node_spki_sha256: bytes
    job_digest: bytes
    node_public_key_pem: bytes  # the attested key: signs receipts and, on the network, the TLS certificate

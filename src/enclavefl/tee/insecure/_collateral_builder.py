"""Signed collateral for the simulated platform, in dcap-qvl's `QuoteCollateralV3` JSON form.

One TCB info lists a ladder of TCB levels, one per status, in descending order; a platform whose PCK
certificate carries the component SVNs of level *i* matches level *i* first (the rule of Intel's
TCB evaluation), so picking a status means picking the PCK certificate, as on real hardware where
the same TCB info rates different platforms differently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from enclavefl.tee.insecure._pki import TestHierarchy, build_empty_crl

# Severity order, best first (Intel TCB info v3 / dcap-qvl TcbStatus).
SIMULATED_TCB_STATUSES: Final = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
_ADVISORIES: Final[dict[str, tuple[str, ...]]] = {
    "UpToDate": (),
    "SWHardeningNeeded": ("INTEL-SA-00615",),
    "ConfigurationNeeded": ("INTEL-SA-00289",),
    "ConfigurationAndSWHardeningNeeded": ("INTEL-SA-00289", "INTEL-SA-00615"),
    "OutOfDate": ("INTEL-SA-00828",),
    "OutOfDateConfigurationNeeded": ("INTEL-SA-00289", "INTEL-SA-00828"),
    "Revoked": ("INTEL-SA-00000",),
}
PCE_SVN: Final = 13
PCE_ID: Final = b"\x00\x00"
TCB_EVALUATION_DATA_NUMBER: Final = 17

# The simulated Quoting Enclave: identity values the QE identity states and the QE report carries.
QE_MRSIGNER: Final = hashlib.sha256(b"enclavefl INSECURE simulated quoting enclave signer").digest()
QE_MRENCLAVE: Final = hashlib.sha256(b"enclavefl INSECURE simulated quoting enclave").digest()
QE_ISV_PROD_ID: Final = 1
QE_ISV_SVN: Final = 8
QE_ATTRIBUTES: Final = bytes.fromhex("1500000000000000e700000000000000")  # INIT|MODE64|PROVISIONKEY

COLLATERAL_LIFETIME: Final = dt.timedelta(days=30)
COLLATERAL_BACKDATE_SECONDS: Final = 3600


def component_svns_for(status: str) -> tuple[int, ...]:
    """The 16 component SVNs of the ladder level with this status (and of a platform rated so)."""
    if status not in SIMULATED_TCB_STATUSES:
        raise ValueError(f"unknown TCB status {status!r}; expected one of {SIMULATED_TCB_STATUSES}")
    top = len(SIMULATED_TCB_STATUSES)
    svn = top - SIMULATED_TCB_STATUSES.index(status)
    return (svn, svn, 2, 2) + (0,) * 12


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _raw_signature_hex(key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def _tcb_info(*, fmspc: bytes, issued: dt.datetime, next_update: dt.datetime) -> str:
    levels = [
        {
            "tcb": {"sgxtcbcomponents": [{"svn": s} for s in component_svns_for(status)], "pcesvn": PCE_SVN},
            "tcbDate": _iso(issued - dt.timedelta(days=90 * (rank + 1))),
            "tcbStatus": status,
            "advisoryIDs": list(_ADVISORIES[status]),
        }
        for rank, status in enumerate(SIMULATED_TCB_STATUSES)
    ]
    return _compact(
        {
            "id": "SGX",
            "version": 3,
            "issueDate": _iso(issued),
            "nextUpdate": _iso(next_update),
            "fmspc": fmspc.hex().upper(),
            "pceId": PCE_ID.hex().upper(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
            "tcbLevels": levels,
        }
    )


def _qe_identity(*, issued: dt.datetime, next_update: dt.datetime) -> str:
    return _compact(
        {
            "id": "QE",
            "version": 2,
            "issueDate": _iso(issued),
            "nextUpdate": _iso(next_update),
            "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": QE_MRSIGNER.hex().upper(),
            "isvprodid": QE_ISV_PROD_ID,
            "tcbLevels": [
                {
                    "tcb": {"isvsvn": QE_ISV_SVN},
                    "tcbDate": _iso(issued - dt.timedelta(days=90)),
                    "tcbStatus": "UpToDate",
                },
                {
                    "tcb": {"isvsvn": 0},
                    "tcbDate": _iso(issued - dt.timedelta(days=900)),
                    "tcbStatus": "OutOfDate",
                    "advisoryIDs": ["INTEL-SA-00615"],
                },
            ],
        }
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralWindow:
    """When a collateral bundle was issued and when it must be refreshed."""

    issued: dt.datetime
    next_update: dt.datetime


def collateral_window(now: int) -> CollateralWindow:
    """The window a host agent fetching at `now` would get: 30 days long, issued on the hour before the last.

    Never dated "now": issued between one and two hours before `now`, so a verifier whose clock is behind the
    node's (by up to an hour) still sees it issued in the past. Real PCCS collateral carries Intel's issue
    date, usually hours old; verifiers tolerate a few minutes of skew for fresher bundles (tee/verify/claims.py).
    """
    issued = dt.datetime.fromtimestamp(now - now % 3600 - COLLATERAL_BACKDATE_SECONDS, tz=dt.UTC)
    return CollateralWindow(issued=issued, next_update=issued + COLLATERAL_LIFETIME)


def build_collateral_json(hierarchy: TestHierarchy, *, fmspc: bytes, window: CollateralWindow) -> str:
    """The whole `QuoteCollateralV3` JSON, signed by the hierarchy's keys, for this window."""

    def pem(*certs: x509.Certificate) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)

    tcb_info = _tcb_info(fmspc=fmspc, issued=window.issued, next_update=window.next_update)
    qe_identity = _qe_identity(issued=window.issued, next_update=window.next_update)
    tcb_chain = pem(hierarchy.tcb_signing_cert, hierarchy.root_cert)
    crl_times = {"last_update": window.issued, "next_update": window.next_update}
    return json.dumps(
        {
            "pck_crl_issuer_chain": pem(hierarchy.pck_ca_cert, hierarchy.root_cert),
            "root_ca_crl": build_empty_crl(hierarchy.root_cert, hierarchy.root_key, **crl_times).hex(),
            "pck_crl": build_empty_crl(hierarchy.pck_ca_cert, hierarchy.pck_ca_key, **crl_times).hex(),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info": tcb_info,
            "tcb_info_signature": _raw_signature_hex(hierarchy.tcb_signing_key, tcb_info.encode()),
            "qe_identity_issuer_chain": tcb_chain,
            "qe_identity": qe_identity,
            "qe_identity_signature": _raw_signature_hex(hierarchy.tcb_signing_key, qe_identity.encode()),
        }
    )

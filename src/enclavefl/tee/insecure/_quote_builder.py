"""Binary SGX DCAP v3 quotes (layout: Intel `sgx_quote_3.h`; tee-brief §4.1), all integers little-endian.

header (48) | ISV report body (384) | sig_data_len (4) |
ISV signature r||s (64) | attestation key x||y (64) | QE report body (384) | QE report sig (64) |
qe_auth_data_len (2) | qe_auth_data | cert_data_type=5 (2) | cert_data_len (4) | PEM chain + NUL
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from enclavefl.tee.insecure._collateral_builder import (
    PCE_SVN,
    QE_ATTRIBUTES,
    QE_ISV_PROD_ID,
    QE_ISV_SVN,
    QE_MRENCLAVE,
    QE_MRSIGNER,
)

INTEL_QE_VENDOR_ID: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
QUOTE_VERSION: Final = 3
ATTESTATION_KEY_TYPE_ECDSA_P256: Final = 2
CERT_DATA_PCK_CHAIN: Final = 5
REPORT_BODY_SIZE: Final = 384
HEADER_SIZE: Final = 48

FLAG_INIT: Final = 0x01
FLAG_DEBUG: Final = 0x02
FLAG_MODE64: Final = 0x04
# Gramine-built quotes in the wild carry XFRM 0xe7 (x87, SSE, AVX, AVX-512 state enabled at load).
_XFRM: Final = 0xE7
# Intel's samples use bytes 00..1F as the QE authentication data.
QE_AUTH_DATA: Final = bytes(range(32))


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedEnclaveIdentity:
    """What the simulated enclave's quote says about it."""

    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int = 0
    isv_svn: int = 0
    debug: bool = False

    def __post_init__(self) -> None:
        if len(self.mrenclave) != 32 or len(self.mrsigner) != 32:
            raise ValueError("mrenclave and mrsigner must be 32 bytes each")
        if not (0 <= self.isv_prod_id <= 0xFFFF and 0 <= self.isv_svn <= 0xFFFF):
            raise ValueError("isv_prod_id and isv_svn must fit in 16 bits")


def report_body(
    *,
    cpu_svn: bytes,
    attributes: bytes,
    mrenclave: bytes,
    mrsigner: bytes,
    isv_prod_id: int,
    isv_svn: int,
    report_data: bytes,
) -> bytes:
    """A 384-byte SGX report body (the layout of both the ISV and the QE report)."""
    body = b"".join(
        (
            cpu_svn,  # 0..16
            bytes(4),  # miscselect
            bytes(12),  # reserved (CET attributes)
            bytes(16),  # isv_ext_prod_id
            attributes,  # 48..64 flags || xfrm
            mrenclave,  # 64..96
            bytes(32),
            mrsigner,  # 128..160
            bytes(32),
            bytes(64),  # config_id
            struct.pack("<HHH", isv_prod_id, isv_svn, 0),  # 256 isvprodid, isvsvn, config_svn
            bytes(42),
            bytes(16),  # isv_family_id
            report_data,  # 320..384
        )
    )
    assert len(body) == REPORT_BODY_SIZE
    return body


def _raw_signature(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """x||y, 64 bytes, as the quote carries the attestation key."""
    numbers = key.public_key().public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def _header() -> bytes:
    return struct.pack(
        "<HHIHH16s20s",
        QUOTE_VERSION,
        ATTESTATION_KEY_TYPE_ECDSA_P256,
        0,  # att_key_data_0 (tee_type 0 = SGX)
        QE_ISV_SVN,
        PCE_SVN,
        INTEL_QE_VENDOR_ID,
        bytes(20),
    )


def qe_section(
    *,
    attestation_key: ec.EllipticCurvePrivateKey,
    pck_leaf_key: ec.EllipticCurvePrivateKey,
    cpu_svn: bytes,
    pem_chain: bytes,
) -> bytes:
    """Everything after the attestation public key: QE report, its PCK signature, auth and cert data.

    It depends only on the platform (attestation key, PCK key and chain), not on the enclave, so a
    caller may cache it per attestation key as a real QE could.
    """
    att_pub = raw_public_key(attestation_key)
    qe_report_data = hashlib.sha256(att_pub + QE_AUTH_DATA).digest() + bytes(32)
    qe_report = report_body(
        cpu_svn=cpu_svn,
        attributes=QE_ATTRIBUTES,
        mrenclave=QE_MRENCLAVE,
        mrsigner=QE_MRSIGNER,
        isv_prod_id=QE_ISV_PROD_ID,
        isv_svn=QE_ISV_SVN,
        report_data=qe_report_data,
    )
    cert_data = pem_chain + b"\x00"
    return b"".join(
        (
            att_pub,
            qe_report,
            _raw_signature(pck_leaf_key, qe_report),
            struct.pack("<H", len(QE_AUTH_DATA)),
            QE_AUTH_DATA,
            struct.pack("<HI", CERT_DATA_PCK_CHAIN, len(cert_data)),
            cert_data,
        )
    )


def build_quote(
    *,
    identity: SimulatedEnclaveIdentity,
    report_data: bytes,
    cpu_svn: bytes,
    attestation_key: ec.EllipticCurvePrivateKey,
    qe_section_bytes: bytes,
) -> bytes:
    """A v3 quote for `identity` binding `report_data` (64 bytes), signed by the attestation key."""
    if len(report_data) != 64:
        raise ValueError(f"report data must be 64 bytes, got {len(report_data)}")
    flags = FLAG_INIT | FLAG_MODE64 | (FLAG_DEBUG if identity.debug else 0)
    body = report_body(
        cpu_svn=cpu_svn,
        attributes=struct.pack("<QQ", flags, _XFRM),
        mrenclave=identity.mrenclave,
        mrsigner=identity.mrsigner,
        isv_prod_id=identity.isv_prod_id,
        isv_svn=identity.isv_svn,
        report_data=report_data,
    )
    signed = _header() + body
    signature_data = _raw_signature(attestation_key, signed) + qe_section_bytes
    return signed + struct.pack("<I", len(signature_data)) + signature_data

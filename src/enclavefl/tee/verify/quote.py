"""Pure-Python parser of DCAP quotes: SGX v3 (and v4 with an SGX body) and TDX v4.

dcap-qvl verifies signatures but does not expose every field we need for policy (ISVPRODID,
ISVSVN, the PCK chain's root subject), so we read them ourselves from the very bytes dcap-qvl
verifies. Parsing proves nothing: only `enclavefl.tee.verify.claims` decides whether to trust a quote.
Layouts: Intel `sgx_quote_3.h` / `sgx_quote_4.h` (tee-brief §4.1, §4.2); all integers little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from enclavefl.errors import QuoteFormatError
from enclavefl.tee.evidence import TeeKind

HEADER_SIZE = 48
SGX_REPORT_BODY_SIZE = 384
TDX_REPORT_BODY_SIZE = 584
TEE_TYPE_SGX = 0x00
TEE_TYPE_TDX = 0x81
CERT_DATA_PCK_CHAIN = 5
CERT_DATA_QE_REPORT = 6

_SGX_FLAG_DEBUG = 0x2
_TDX_TUD_DEBUG = 0x1


@dataclass(frozen=True, slots=True, kw_only=True)
class SgxReportBody:
    """The 384-byte SGX report body (ISV enclave report or QE report)."""

    cpu_svn: bytes
    misc_select: int
    attributes_flags: int
    xfrm: int
    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (flags bit 1)."""
        return bool(self.attributes_flags & _SGX_FLAG_DEBUG)


@dataclass(frozen=True, slots=True, kw_only=True)
class TdxReportBody:
    """The 584-byte TD report body of a v4 TDX quote (TDREPORT 1.0)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes

    @property
    def debug(self) -> bool:
        """TD_ATTRIBUTES.TUD bit 0 (DEBUG)."""
        return bool(self.td_attributes[0] & _TDX_TUD_DEBUG)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedQuote:
    """The fields of a DCAP quote that verification and policy need."""

    version: int
    tee: TeeKind
    attestation_key_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    body: SgxReportBody | TdxReportBody
    qe_report: SgxReportBody
    certification_data_type: int
    pck_chain_pem: bytes | None
    """PEM chain (leaf, intermediate CA, root) when the certification data carries one (type 5)."""

    @property
    def report_data(self) -> bytes:
        return self.body.report_data

    @property
    def debug(self) -> bool:
        return self.body.debug


class _Reader:
    """Bounds-checked cursor; every short read names the field and its offset."""

    def __init__(self, data: bytes, offset: int = 0, end: int | None = None) -> None:
        self._data = data
        self.offset = offset
        self._end = len(data) if end is None else end

    def take(self, size: int, field: str) -> bytes:
        if size < 0 or self.offset + size > self._end:
            raise QuoteFormatError(
                f"quote too short: field {field!r} needs {size} bytes at offset {self.offset}, "
                f"only {max(self._end - self.offset, 0)} left"
            )
        chunk = self._data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u16(self, field: str) -> int:
        return int(struct.unpack("<H", self.take(2, field))[0])

    def u32(self, field: str) -> int:
        return int(struct.unpack("<I", self.take(4, field))[0])

    def u64(self, field: str) -> int:
        return int(struct.unpack("<Q", self.take(8, field))[0])


def parse_quote(raw: bytes) -> ParsedQuote:
    """Parse a DCAP quote; malformed or short input raises QuoteFormatError naming offset and field."""
    raw = bytes(raw)
    r = _Reader(raw)
    version = r.u16("header.version")
    attestation_key_type = r.u16("header.attestation_key_type")
    tee_type = r.u32("header.tee_type")
    qe_svn = r.u16("header.qe_svn")
    pce_svn = r.u16("header.pce_svn")
    qe_vendor_id = r.take(16, "header.qe_vendor_id")
    r.take(20, "header.user_data")

    body: SgxReportBody | TdxReportBody
    if version == 3:
        if tee_type != TEE_TYPE_SGX:
            raise QuoteFormatError(f"v3 quote with tee_type {tee_type:#x} at offset 4: v3 is SGX only")
        tee = TeeKind.SGX
        body = _parse_sgx_body(r, "report")
    elif version == 4:
        if tee_type == TEE_TYPE_SGX:
            tee = TeeKind.SGX
            body = _parse_sgx_body(r, "report")
        elif tee_type == TEE_TYPE_TDX:
            tee = TeeKind.TDX
            body = _parse_tdx_body(r)
        else:
            raise QuoteFormatError(f"unknown tee_type {tee_type:#x} at offset 4")
    else:
        raise QuoteFormatError(f"unsupported quote version {version} at offset 0 (expected 3 or 4)")

    signature_len = r.u32("signature_data_len")
    sig = _Reader(raw, r.offset, r.offset + signature_len)
    if r.offset + signature_len > len(raw):
        raise QuoteFormatError(
            f"signature_data_len {signature_len} at offset {r.offset - 4} exceeds the quote "
            f"({len(raw) - r.offset} bytes left)"
        )
    sig.take(64, "signature.isv_signature")
    sig.take(64, "signature.attestation_key")
    if version == 3:
        qe_report, cert_type, cert_data = _parse_qe_auth_and_cert(sig)
    else:
        outer_type = sig.u16("signature.certification_data_type")
        outer_size = sig.u32("signature.certification_data_size")
        if outer_type != CERT_DATA_QE_REPORT:
            raise QuoteFormatError(
                f"v4 certification data type {outer_type} at offset {sig.offset - 6}: expected 6 (QE report)"
            )
        inner = _Reader(raw, sig.offset, sig.offset + outer_size)
        sig.take(outer_size, "signature.certification_data")
        qe_report, cert_type, cert_data = _parse_qe_auth_and_cert(inner)

    pck_chain_pem = cert_data.rstrip(b"\x00") if cert_type == CERT_DATA_PCK_CHAIN else None
    return ParsedQuote(
        version=version,
        tee=tee,
        attestation_key_type=attestation_key_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=qe_vendor_id,
        body=body,
        qe_report=qe_report,
        certification_data_type=cert_type,
        pck_chain_pem=pck_chain_pem,
    )


def _parse_qe_auth_and_cert(r: _Reader) -> tuple[SgxReportBody, int, bytes]:
    """QE report, its signature, QE auth data, then the (inner) certification data."""
    qe_report = _parse_sgx_body(r, "qe_report")
    r.take(64, "qe_report_signature")
    auth_size = r.u16("qe_auth_data.size")
    r.take(auth_size, "qe_auth_data")
    cert_type = r.u16("certification_data.type")
    cert_size = r.u32("certification_data.size")
    cert_data = r.take(cert_size, "certification_data")
    return qe_report, cert_type, cert_data


def _parse_sgx_body(r: _Reader, name: str) -> SgxReportBody:
    cpu_svn = r.take(16, f"{name}.cpu_svn")
    misc_select = r.u32(f"{name}.misc_select")
    r.take(28, f"{name}.reserved1")
    attributes_flags = r.u64(f"{name}.attributes.flags")
    xfrm = r.u64(f"{name}.attributes.xfrm")
    mrenclave = r.take(32, f"{name}.mrenclave")
    r.take(32, f"{name}.reserved2")
    mrsigner = r.take(32, f"{name}.mrsigner")
    r.take(96, f"{name}.reserved3")
    isv_prod_id = r.u16(f"{name}.isv_prod_id")
    isv_svn = r.u16(f"{name}.isv_svn")
    r.take(60, f"{name}.reserved4")
    report_data = r.take(64, f"{name}.report_data")
    return SgxReportBody(
        cpu_svn=cpu_svn,
        misc_select=misc_select,
        attributes_flags=attributes_flags,
        xfrm=xfrm,
        mrenclave=mrenclave,
        mrsigner=mrsigner,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        report_data=report_data,
    )


def _parse_tdx_body(r: _Reader) -> TdxReportBody:
    tee_tcb_svn = r.take(16, "td_report.tee_tcb_svn")
    mr_seam = r.take(48, "td_report.mr_seam")
    mr_signer_seam = r.take(48, "td_report.mr_signer_seam")
    r.take(8, "td_report.seam_attributes")
    td_attributes = r.take(8, "td_report.td_attributes")
    xfam = r.take(8, "td_report.xfam")
    mr_td = r.take(48, "td_report.mr_td")
    mr_config_id = r.take(48, "td_report.mr_config_id")
    mr_owner = r.take(48, "td_report.mr_owner")
    mr_owner_config = r.take(48, "td_report.mr_owner_config")
    rtmrs = (
        r.take(48, "td_report.rtmr0"),
        r.take(48, "td_report.rtmr1"),
        r.take(48, "td_report.rtmr2"),
        r.take(48, "td_report.rtmr3"),
    )
    report_data = r.take(64, "td_report.report_data")
    return TdxReportBody(
        tee_tcb_svn=tee_tcb_svn,
        mr_seam=mr_seam,
        mr_signer_seam=mr_signer_seam,
        td_attributes=td_attributes,
        xfam=xfam,
        mr_td=mr_td,
        mr_config_id=mr_config_id,
        mr_owner=mr_owner,
        mr_owner_config=mr_owner_config,
        rtmrs=rtmrs,
        report_data=report_data,
    )

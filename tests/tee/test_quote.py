"""The pure-Python DCAP quote parser, on the real SGX/TDX vectors (values in tests/vectors/README.md)."""

from __future__ import annotations

import struct
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from enclavefl.errors import QuoteFormatError
from enclavefl.tee.evidence import TeeKind
from enclavefl.tee.verify.quote import SgxReportBody, TdxReportBody, parse_quote

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "phala-dcap-qvl"
SGX_QUOTE = (VECTORS / "sgx_quote").read_bytes()
TDX_QUOTE = (VECTORS / "tdx_quote").read_bytes()


def test_sgx_vector_fields_match_the_readme() -> None:
    quote = parse_quote(SGX_QUOTE)

    assert quote.version == 3
    assert quote.tee is TeeKind.SGX
    assert isinstance(quote.body, SgxReportBody)
    assert quote.body.mrenclave.hex() == "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert quote.body.mrsigner.hex() == "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    assert (quote.body.isv_prod_id, quote.body.isv_svn) == (0, 0)
    assert quote.body.attributes_flags == 0x5
    assert quote.body.xfrm == 0xE7
    assert quote.debug is False
    assert quote.report_data == b"Hello, world!".ljust(64, b"\x00")
    assert quote.qe_report.isv_svn == 10
    assert quote.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"


def test_tdx_vector_fields_match_dcap_qvls_own_parser() -> None:
    ours = parse_quote(TDX_QUOTE)
    theirs = dcap_qvl.parse_quote(TDX_QUOTE).report

    assert ours.version == 4
    assert ours.tee is TeeKind.TDX
    assert isinstance(ours.body, TdxReportBody)
    assert ours.body.mr_td == bytes(theirs.mr_td)
    assert ours.body.rtmrs == tuple(bytes(getattr(theirs, f"rt_mr{i}")) for i in range(4))
    assert ours.body.td_attributes == bytes(theirs.td_attributes)
    assert ours.report_data == bytes(theirs.report_data)
    assert ours.debug is False


def test_sgx_fields_match_dcap_qvls_own_parser() -> None:
    ours = parse_quote(SGX_QUOTE)
    theirs = dcap_qvl.parse_quote(SGX_QUOTE).report

    assert isinstance(ours.body, SgxReportBody)
    assert ours.body.mrenclave == bytes(theirs.mr_enclave)
    assert ours.body.mrsigner == bytes(theirs.mr_signer)
    assert ours.report_data == bytes(theirs.report_data)


@pytest.mark.parametrize(
    ("raw", "intermediate_cn"),
    [(SGX_QUOTE, "Intel SGX PCK Processor CA"), (TDX_QUOTE, "Intel SGX PCK Platform CA")],
    ids=["sgx-type5", "tdx-type6-wrapping-type5"],
)
def test_pck_chain_is_extracted_up_to_intels_root(raw: bytes, intermediate_cn: str) -> None:
    quote = parse_quote(raw)

    assert quote.pck_chain_pem is not None
    chain = x509.load_pem_x509_certificates(quote.pck_chain_pem)
    common_names = [c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in chain]
    assert common_names[1:] == [intermediate_cn, "Intel SGX Root CA"]
    assert quote.certification_data_type == 5


def test_debug_flag_is_read_from_attributes_bit_1() -> None:
    flipped = bytearray(SGX_QUOTE)
    flipped[96] |= 0x2

    assert parse_quote(bytes(flipped)).debug is True


def test_tdx_debug_flag_is_read_from_tud_bit_0() -> None:
    flipped = bytearray(TDX_QUOTE)
    flipped[48 + 120] |= 0x1

    assert parse_quote(bytes(flipped)).debug is True


@pytest.mark.parametrize(
    ("length", "fragment"),
    [
        (0, "header.version"),
        (40, "header.user_data"),
        (100, "report.attributes.flags"),
        (307, "report.isv_svn"),
        (432, "signature_data_len"),
        (1000, "signature_data_len 4164"),
    ],
)
def test_truncated_sgx_quote_names_the_field_and_offset(length: int, fragment: str) -> None:
    with pytest.raises(QuoteFormatError, match="offset") as caught:
        parse_quote(SGX_QUOTE[:length])

    assert fragment in str(caught.value)


def test_truncated_tdx_quote_names_the_field() -> None:
    with pytest.raises(QuoteFormatError, match=r"td_report\.rtmr1"):
        parse_quote(TDX_QUOTE[: 48 + 328 + 60])


def test_unknown_version_is_refused_with_its_offset() -> None:
    raw = struct.pack("<H", 7) + SGX_QUOTE[2:]

    with pytest.raises(QuoteFormatError, match="unsupported quote version 7 at offset 0"):
        parse_quote(raw)


def test_certification_data_larger_than_the_quote_is_refused() -> None:
    raw = bytearray(SGX_QUOTE)
    cert_size_offset = 436 + 64 + 64 + 384 + 64 + 2 + 32 + 2
    raw[cert_size_offset : cert_size_offset + 4] = struct.pack("<I", 10_000)

    with pytest.raises(QuoteFormatError, match="certification_data"):
        parse_quote(bytes(raw))


def test_v4_quote_without_qe_report_certification_data_is_refused() -> None:
    raw = bytearray(TDX_QUOTE)
    raw[636 + 128 : 636 + 130] = struct.pack("<H", 5)

    with pytest.raises(QuoteFormatError, match="expected 6"):
        parse_quote(bytes(raw))

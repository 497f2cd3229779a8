"""SIGSTRUCT parsing and signature checks on a SIGSTRUCT built here from the offsets in tee-brief §1.6."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from enclavefl.errors import ConfigError, SigstructFormatError, SigstructSignatureError
from enclavefl.tee.gramine_pkg.sigstruct import (
    build_sigstruct,
    mrsigner_from_public_key,
    parse_sigstruct,
    verify_sigstruct_signature,
)

MRENCLAVE = bytes.fromhex("840d61b0" * 8)
ISV_PROD_ID = 0x1234
ISV_SVN = 7
FLAGS = 0x4  # MODE64BIT, production
XFRM = 0x3
FLAGS_MASK = 0xFFFFFFFFFFFFFFFD
XFRM_MASK = 0xFFFFFFFFFFF9FF1B
MISC_SELECT = 0
MISC_MASK = 0xFFFFFFFF


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


def handcrafted_sigstruct(key: rsa.RSAPrivateKey, *, flags: int = FLAGS) -> bytes:
    """Build a SIGSTRUCT field by field from the published layout, independent of the product code."""
    buf = bytearray(1808)
    buf[0:16] = bytes.fromhex("06000000E10000000000010000000000")
    buf[16:20] = (0).to_bytes(4, "little")  # vendor
    buf[20:24] = bytes([0x25, 0x20, 0x07, 0x19])  # BCD 2025-07-19: year u16 LE, month, day
    buf[24:40] = bytes.fromhex("01010000600000006000000001000000")
    buf[900:904] = MISC_SELECT.to_bytes(4, "little")
    buf[904:908] = MISC_MASK.to_bytes(4, "little")
    buf[928:936] = flags.to_bytes(8, "little")
    buf[936:944] = XFRM.to_bytes(8, "little")
    buf[944:952] = FLAGS_MASK.to_bytes(8, "little")
    buf[952:960] = XFRM_MASK.to_bytes(8, "little")
    buf[960:992] = MRENCLAVE
    buf[1024:1026] = ISV_PROD_ID.to_bytes(2, "little")
    buf[1026:1028] = ISV_SVN.to_bytes(2, "little")
    signed = bytes(buf[0:128]) + bytes(buf[900:1028])
    signature = int.from_bytes(key.sign(signed, padding.PKCS1v15(), hashes.SHA256()), "big")
    n = key.public_key().public_numbers().n
    buf[128:512] = n.to_bytes(384, "little")
    buf[512:516] = (3).to_bytes(4, "little")
    buf[516:900] = signature.to_bytes(384, "little")
    q1 = signature * signature // n
    q2 = (signature * signature % n) * signature // n
    buf[1040:1424] = q1.to_bytes(384, "little")
    buf[1424:1808] = q2.to_bytes(384, "little")
    return bytes(buf)


def test_parse_reads_every_field_of_a_constructed_sigstruct(signing_key: rsa.RSAPrivateKey) -> None:
    data = handcrafted_sigstruct(signing_key)

    sig = parse_sigstruct(data)

    assert sig.mrenclave == MRENCLAVE
    assert sig.mrsigner == hashlib.sha256(data[128:512]).digest()
    assert (sig.isv_prod_id, sig.isv_svn) == (ISV_PROD_ID, ISV_SVN)
    assert (sig.attribute_flags, sig.attribute_xfrm) == (FLAGS, XFRM)
    assert (sig.attribute_flags_mask, sig.attribute_xfrm_mask) == (FLAGS_MASK, XFRM_MASK)
    assert (sig.misc_select, sig.misc_mask) == (MISC_SELECT, MISC_MASK)
    assert sig.debug is False
    assert sig.vendor == 0
    assert sig.date == "2025-07-19"
    assert sig.exponent == 3
    assert sig.modulus == data[128:512]
    assert sig.signature == data[516:900]


def test_debug_flag_is_bit_one_of_the_attribute_flags(signing_key: rsa.RSAPrivateKey) -> None:
    data = handcrafted_sigstruct(signing_key, flags=FLAGS | 0b10)

    assert verify_sigstruct_signature(data).debug is True


def test_signature_of_an_untouched_sigstruct_verifies(signing_key: rsa.RSAPrivateKey) -> None:
    data = handcrafted_sigstruct(signing_key)

    assert verify_sigstruct_signature(data) == parse_sigstruct(data)


@pytest.mark.parametrize(
    ("offset", "what"),
    [(960, "mrenclave"), (1026, "isv_svn"), (1024, "isv_prod_id"), (928, "attributes"), (20, "date"), (900, "misc")],
)
def test_tampered_signed_field_fails_signature_check(signing_key: rsa.RSAPrivateKey, offset: int, what: str) -> None:
    data = bytearray(handcrafted_sigstruct(signing_key))
    data[offset] ^= 0x02

    with pytest.raises(SigstructSignatureError):
        verify_sigstruct_signature(bytes(data))


@pytest.mark.parametrize("offset", [128, 516, 1040, 1424])
def test_tampered_modulus_signature_or_q_values_fail(signing_key: rsa.RSAPrivateKey, offset: int) -> None:
    data = bytearray(handcrafted_sigstruct(signing_key))
    data[offset + 5] ^= 0x01

    with pytest.raises(SigstructSignatureError):
        verify_sigstruct_signature(bytes(data))


def test_tampered_sigstruct_still_parses_without_signature_check(signing_key: rsa.RSAPrivateKey) -> None:
    data = bytearray(handcrafted_sigstruct(signing_key))
    data[1026] = 9

    assert parse_sigstruct(bytes(data)).isv_svn == 9


@pytest.mark.parametrize("size", [0, 1807, 1809, 4096])
def test_wrong_size_is_a_format_error(signing_key: rsa.RSAPrivateKey, size: int) -> None:
    data = (handcrafted_sigstruct(signing_key) * 3)[:size]

    with pytest.raises(SigstructFormatError, match="1808"):
        parse_sigstruct(data)


@pytest.mark.parametrize("offset", [0, 4, 30])
def test_wrong_header_is_a_format_error(signing_key: rsa.RSAPrivateKey, offset: int) -> None:
    data = bytearray(handcrafted_sigstruct(signing_key))
    data[offset] ^= 0xFF

    with pytest.raises(SigstructFormatError, match="header"):
        parse_sigstruct(bytes(data))


def test_format_errors_are_config_errors() -> None:
    assert issubclass(SigstructSignatureError, SigstructFormatError)
    assert issubclass(SigstructFormatError, ConfigError)


def test_exponent_other_than_three_is_refused(signing_key: rsa.RSAPrivateKey) -> None:
    data = bytearray(handcrafted_sigstruct(signing_key))
    struct.pack_into("<I", data, 512, 65537)

    with pytest.raises(SigstructFormatError, match="exponent"):
        verify_sigstruct_signature(bytes(data))


def test_mrsigner_from_private_or_public_pem_matches_the_sigstruct(signing_key: rsa.RSAPrivateKey) -> None:
    private_pem = signing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = parse_sigstruct(handcrafted_sigstruct(signing_key)).mrsigner

    assert mrsigner_from_public_key(private_pem) == expected
    assert mrsigner_from_public_key(public_pem) == expected


def test_mrsigner_refuses_a_key_sgx_cannot_use() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    with pytest.raises(SigstructFormatError, match="RSA-3072"):
        mrsigner_from_public_key(pem)


def test_mrsigner_refuses_garbage_pem() -> None:
    with pytest.raises(SigstructFormatError):
        mrsigner_from_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_build_sigstruct_matches_the_published_layout_byte_for_byte(signing_key: rsa.RSAPrivateKey) -> None:
    built = build_sigstruct(
        signing_key,
        mrenclave=MRENCLAVE,
        isv_prod_id=ISV_PROD_ID,
        isv_svn=ISV_SVN,
        attribute_flags=FLAGS,
        attribute_xfrm=XFRM,
        attribute_flags_mask=FLAGS_MASK,
        attribute_xfrm_mask=XFRM_MASK,
        misc_select=MISC_SELECT,
        misc_mask=MISC_MASK,
        date="2025-07-19",
    )

    assert built == handcrafted_sigstruct(signing_key)  # PKCS#1 v1.5 signatures are deterministic


def test_build_sigstruct_refuses_out_of_range_fields(signing_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SigstructFormatError):
        build_sigstruct(signing_key, mrenclave=MRENCLAVE, isv_svn=70000)
    with pytest.raises(SigstructFormatError):
        build_sigstruct(signing_key, mrenclave=MRENCLAVE[:31])

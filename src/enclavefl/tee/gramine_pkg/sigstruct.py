"""Read an SGX SIGSTRUCT (Gramine's `app.sig`) in pure Python: MRENCLAVE, MRSIGNER, ISV ids.

Layout from Gramine `pal/src/host/linux-sgx/sgx_arch.h` (all integers little-endian):

    0 header(16)  16 vendor(4)  20 date(4, BCD yyyy mm dd)  24 header2(16)  40 hw_version(4)
    128 modulus(384, LE)  512 exponent(4)  516 signature(384, LE)
    900 misc_select(4)  904 misc_mask(4)  928 attributes(16)  944 attribute_mask(16)
    960 enclave_hash = MRENCLAVE(32)  1024 isv_prod_id(2)  1026 isv_svn(2)
    1040 q1(384)  1424 q2(384)  -> 1808 bytes

This lets a data owner compute the values for its attestation policy from the `.sig` file
without installing Gramine (what `gramine-sgx-sigstruct-view` prints).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from enclavefl.errors import SigstructFormatError, SigstructSignatureError

SIGSTRUCT_SIZE = 1808
SIGSTRUCT_HEADER = bytes.fromhex("06000000E10000000000010000000000")
SIGSTRUCT_HEADER2 = bytes.fromhex("01010000600000006000000001000000")
RSA_MODULUS_BYTES = 384  # SGX signs enclaves with RSA-3072 only
SGX_RSA_EXPONENT = 3
ATTRIBUTE_DEBUG = 0b10  # ATTRIBUTES.FLAGS bit 1

_MODULUS_OFF = 128
_EXPONENT_OFF = 512
_SIGNATURE_OFF = 516
_MISC_SELECT_OFF = 900
_ENCLAVE_HASH_OFF = 960
_Q1_OFF = 1040
_Q2_OFF = 1424


@dataclass(frozen=True, slots=True, kw_only=True)
class Sigstruct:
    """The identity fields of a SIGSTRUCT; byte fields are stored as in the file."""

    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    attribute_flags: int
    attribute_xfrm: int
    attribute_flags_mask: int
    attribute_xfrm_mask: int
    debug: bool
    misc_select: int
    misc_mask: int
    vendor: int
    date: str  # "YYYY-MM-DD" as written by gramine-sgx-sign; "0000-00-00" for reproducible builds
    modulus: bytes = field(repr=False)  # 384 bytes, little-endian as stored
    exponent: int
    signature: bytes = field(repr=False)  # 384 bytes, little-endian as stored


def parse_sigstruct(data: bytes) -> Sigstruct:
    """Parse a 1808-byte SIGSTRUCT; raises SigstructFormatError on size or header mismatch.

    Does not check the signature; call `verify_sigstruct_signature` for that.
    """
    if len(data) != SIGSTRUCT_SIZE:
        raise SigstructFormatError(f"a SIGSTRUCT is {SIGSTRUCT_SIZE} bytes, this file has {len(data)}")
    if data[0:16] != SIGSTRUCT_HEADER:
        raise SigstructFormatError(f"SIGSTRUCT header is {data[0:16].hex()}, expected {SIGSTRUCT_HEADER.hex()}")
    if data[24:40] != SIGSTRUCT_HEADER2:
        raise SigstructFormatError(f"SIGSTRUCT header2 is {data[24:40].hex()}, expected {SIGSTRUCT_HEADER2.hex()}")
    vendor, year, month, day = struct.unpack_from("<IHBB", data, 16)
    modulus = bytes(data[_MODULUS_OFF : _MODULUS_OFF + RSA_MODULUS_BYTES])
    (exponent,) = struct.unpack_from("<I", data, _EXPONENT_OFF)
    misc_select, misc_mask = struct.unpack_from("<II", data, _MISC_SELECT_OFF)
    flags, xfrm, flags_mask, xfrm_mask = struct.unpack_from("<QQQQ", data, 928)
    isv_prod_id, isv_svn = struct.unpack_from("<HH", data, 1024)
    return Sigstruct(
        mrenclave=bytes(data[_ENCLAVE_HASH_OFF : _ENCLAVE_HASH_OFF + 32]),
        mrsigner=hashlib.sha256(modulus).digest(),
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        attribute_flags=flags,
        attribute_xfrm=xfrm,
        attribute_flags_mask=flags_mask,
        attribute_xfrm_mask=xfrm_mask,
        debug=bool(flags & ATTRIBUTE_DEBUG),
        misc_select=misc_select,
        misc_mask=misc_mask,
        vendor=vendor,
        # BCD: 0x2025 is the year 2025, so hex formatting gives the decimal digits back
        date=f"{year:04x}-{month:02x}-{day:02x}",
        modulus=modulus,
        exponent=exponent,
        signature=bytes(data[_SIGNATURE_OFF : _SIGNATURE_OFF + RSA_MODULUS_BYTES]),
    )


def sigstruct_signing_data(data: bytes) -> bytes:
    """The 256 bytes an enclave signer signs: bytes 0..128 and 900..1028 of the SIGSTRUCT."""
    return bytes(data[0:128]) + bytes(data[_MISC_SELECT_OFF : _MISC_SELECT_OFF + 128])


def verify_sigstruct_signature(data: bytes) -> Sigstruct:
    """Parse and check the RSA-3072 PKCS#1 v1.5 SHA-256 signature (and q1/q2) against the modulus.

    Proves the file was signed by the holder of the key whose hash is the returned MRSIGNER and
    that no signed field (MRENCLAVE, ISV ids, attributes) was changed afterwards.
    """
    sig = parse_sigstruct(data)
    if sig.exponent != SGX_RSA_EXPONENT:
        raise SigstructFormatError(f"SGX requires RSA exponent 3, this SIGSTRUCT has {sig.exponent}")
    n = int.from_bytes(sig.modulus, "little")
    s = int.from_bytes(sig.signature, "little")
    if n.bit_length() != RSA_MODULUS_BYTES * 8 or s >= n:
        raise SigstructSignatureError("SIGSTRUCT modulus or signature is out of range for RSA-3072")
    public_key = rsa.RSAPublicNumbers(SGX_RSA_EXPONENT, n).public_key()
    try:
        public_key.verify(
            s.to_bytes(RSA_MODULUS_BYTES, "big"), sigstruct_signing_data(data), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature as exc:
        raise SigstructSignatureError(
            "SIGSTRUCT signature does not verify: the file was modified after signing"
        ) from exc
    # EINIT also checks these helper values; a mismatch means the file would not launch.
    q1, q2 = _sgx_q1_q2(s, n)
    if data[_Q1_OFF : _Q1_OFF + 384] != q1 or data[_Q2_OFF : _Q2_OFF + 384] != q2:
        raise SigstructSignatureError("SIGSTRUCT q1/q2 do not match its signature and modulus")
    return sig


def _sgx_q1_q2(signature: int, modulus: int) -> tuple[bytes, bytes]:
    """q1 = floor(s^2 / n), q2 = floor((s^3 - q1*s*n) / n), little-endian (Intel SDM EINIT)."""
    square = signature * signature
    q1 = square // modulus
    q2 = (square % modulus) * signature // modulus
    return q1.to_bytes(RSA_MODULUS_BYTES, "little"), q2.to_bytes(RSA_MODULUS_BYTES, "little")


def build_sigstruct(
    private_key: rsa.RSAPrivateKey,
    *,
    mrenclave: bytes,
    isv_prod_id: int = 0,
    isv_svn: int = 0,
    attribute_flags: int = 0x4,  # MODE64BIT, production (DEBUG bit clear)
    attribute_xfrm: int = 0x3,
    attribute_flags_mask: int = 0xFFFFFFFFFFFFFFFF,
    attribute_xfrm_mask: int = 0xFFFFFFFFFFFFFFFF,
    misc_select: int = 0,
    misc_mask: int = 0xFFFFFFFF,
    date: str = "0000-00-00",
) -> bytes:
    """A signed SIGSTRUCT for an enclave measured elsewhere (simulation, tests), as gramine-sgx-sign does."""
    if private_key.key_size != RSA_MODULUS_BYTES * 8 or private_key.public_key().public_numbers().e != 3:
        raise SigstructFormatError("an SGX signing key is RSA-3072 with exponent 3")
    if len(mrenclave) != 32:
        raise SigstructFormatError(f"MRENCLAVE is 32 bytes, got {len(mrenclave)}")
    try:
        year, month, day = (int(part, 16) for part in date.split("-"))
        buffer = bytearray(SIGSTRUCT_SIZE)
        buffer[0:16] = SIGSTRUCT_HEADER
        struct.pack_into("<IHBB", buffer, 16, 0, year, month, day)
        buffer[24:40] = SIGSTRUCT_HEADER2
        struct.pack_into("<II", buffer, _MISC_SELECT_OFF, misc_select, misc_mask)
        struct.pack_into(
            "<QQQQ", buffer, 928, attribute_flags, attribute_xfrm, attribute_flags_mask, attribute_xfrm_mask
        )
        buffer[_ENCLAVE_HASH_OFF : _ENCLAVE_HASH_OFF + 32] = mrenclave
        struct.pack_into("<HH", buffer, 1024, isv_prod_id, isv_svn)
    except (ValueError, struct.error) as exc:
        raise SigstructFormatError(f"SIGSTRUCT field out of range: {exc}") from exc
    signature_be = private_key.sign(sigstruct_signing_data(bytes(buffer)), padding.PKCS1v15(), hashes.SHA256())
    n = private_key.public_key().public_numbers().n
    s = int.from_bytes(signature_be, "big")
    buffer[_MODULUS_OFF : _MODULUS_OFF + RSA_MODULUS_BYTES] = n.to_bytes(RSA_MODULUS_BYTES, "little")
    struct.pack_into("<I", buffer, _EXPONENT_OFF, SGX_RSA_EXPONENT)
    buffer[_SIGNATURE_OFF : _SIGNATURE_OFF + RSA_MODULUS_BYTES] = s.to_bytes(RSA_MODULUS_BYTES, "little")
    q1, q2 = _sgx_q1_q2(s, n)
    buffer[_Q1_OFF : _Q1_OFF + RSA_MODULUS_BYTES] = q1
    buffer[_Q2_OFF : _Q2_OFF + RSA_MODULUS_BYTES] = q2
    return bytes(buffer)


def mrsigner_from_public_key(pem: bytes) -> bytes:
    """MRSIGNER for an enclave signing key: SHA-256 of its 384-byte little-endian modulus.

    Accepts a PEM public key or the PEM private key `gramine-sgx-gen-private-key` writes.
    """
    public_key = _load_rsa_public_key(pem)
    numbers = public_key.public_numbers()
    if public_key.key_size != RSA_MODULUS_BYTES * 8 or numbers.e != SGX_RSA_EXPONENT:
        raise SigstructFormatError(
            f"an SGX signing key is RSA-3072 with exponent 3, got RSA-{public_key.key_size} e={numbers.e}"
        )
    return hashlib.sha256(numbers.n.to_bytes(RSA_MODULUS_BYTES, "little")).digest()


def _load_rsa_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key: object
    if b"PRIVATE KEY" in pem:
        try:
            private_key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SigstructFormatError(f"cannot read the PEM private key: {exc}") from exc
        key = private_key.public_key()
    else:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise SigstructFormatError(f"cannot read the PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SigstructFormatError(f"an SGX signing key is RSA, got {type(key).__name__}")
    return key

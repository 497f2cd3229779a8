"""What a quote's 64 bytes of report data bind: the node's TLS key, the job and the client's nonce.

    report_data = SHA-256(DOMAIN || 0x00 || tls_spki_sha256 || job_digest || nonce) || nonce

The node sends its claimed SPKI hash and job digest in clear next to the evidence. The data owner
checks that the quote binds exactly those claims and its own fresh nonce, that the claimed key is
the one its TLS channel presents, and that the claimed job is the job it agreed to (DESIGN.md §4): that
check is tee/verify/report_data.py's, outside the enclave.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

REPORT_DATA_DOMAIN = b"enclavefl/report-data/v1"
REPORT_DATA_SIZE = 64
HASH_SIZE = 32


def spki_sha256(public_key_or_cert_der: bytes | x509.Certificate | PublicKeyTypes) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo of a key, a certificate, or their DER bytes."""
    key: PublicKeyTypes
    if isinstance(public_key_or_cert_der, bytes | bytearray | memoryview):
        der = bytes(public_key_or_cert_der)
        try:
            key = x509.load_der_x509_certificate(der).public_key()
        except ValueError:
            try:
                key = serialization.load_der_public_key(der)
            except ValueError as exc:
                raise ValueError("bytes are neither a DER certificate nor a DER public key") from exc
    elif isinstance(public_key_or_cert_der, x509.Certificate):
        key = public_key_or_cert_der.public_key()
    else:
        key = public_key_or_cert_der
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def compute_report_data(*, tls_spki_sha256: bytes, job_digest: bytes, nonce: bytes) -> bytes:
    """The 64 bytes a node writes as report data; each input must be exactly 32 bytes."""
    for name, value in (("tls_spki_sha256", tls_spki_sha256), ("job_digest", job_digest), ("nonce", nonce)):
        if len(value) != HASH_SIZE:
            raise ValueError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
    digest = hashlib.sha256(REPORT_DATA_DOMAIN + b"\x00" + tls_spki_sha256 + job_digest + nonce).digest()
    return digest + nonce

"""What a quote's 64 bytes of report data bind: the node's TLS key, the job and the client's nonce.

    report_data = SHA-256(DOMAIN || 0x00 || tls_spki_sha256 || job_digest || nonce) || nonce

The node sends its claimed SPKI hash and job digest in clear next to the evidence. The data owner
checks that the quote binds exactly those claims and its own fresh nonce, that the claimed key is
the one its TLS channel presents, and that the claimed job is the job it agreed to (DESIGN.md §4).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from enclavefl.errors import JobDigestMismatch, NonceMismatch, ReportDataMismatch, TlsKeyNotBound

REPORT_DATA_DOMAIN = b"enclavefl/report-data/v1"
REPORT_DATA_SIZE = 64
_HASH_SIZE = 32


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
        if len(value) != _HASH_SIZE:
            raise ValueError(f"{name} must be {_HASH_SIZE} bytes, got {len(value)}")
    digest = hashlib.sha256(REPORT_DATA_DOMAIN + b"\x00" + tls_spki_sha256 + job_digest + nonce).digest()
    return digest + nonce


def check_report_data(
    report_data: bytes,
    *,
    claimed_tls_spki_sha256: bytes,
    claimed_job_digest: bytes,
    actual_tls_spki_sha256: bytes,
    expected_job_digest: bytes,
    nonce: bytes,
) -> None:
    """Raise the precise ReportDataMismatch leaf unless the quote binds our nonce, the TLS key and the job.

    `claimed_*` come from the (untrusted) node; `actual_tls_spki_sha256`, `expected_job_digest` and
    `nonce` are the data owner's own values.
    """
    for name, value in (
        ("actual_tls_spki_sha256", actual_tls_spki_sha256),
        ("expected_job_digest", expected_job_digest),
        ("nonce", nonce),
    ):
        if len(value) != _HASH_SIZE:
            raise ValueError(f"{name} must be {_HASH_SIZE} bytes, got {len(value)}")
    if len(report_data) != REPORT_DATA_SIZE:
        raise ReportDataMismatch(f"report data is {len(report_data)} bytes, expected {REPORT_DATA_SIZE}")
    if not hmac.compare_digest(report_data[_HASH_SIZE:], nonce):
        raise NonceMismatch("evidence answers another nonce: replayed or stale")
    for name, value in (
        ("claimed TLS key hash", claimed_tls_spki_sha256),
        ("claimed job digest", claimed_job_digest),
    ):
        if len(value) != _HASH_SIZE:
            raise ReportDataMismatch(f"{name} is {len(value)} bytes, expected {_HASH_SIZE}")
    bound = compute_report_data(tls_spki_sha256=claimed_tls_spki_sha256, job_digest=claimed_job_digest, nonce=nonce)
    if not hmac.compare_digest(report_data, bound):
        raise ReportDataMismatch("claims not bound by the quote: report data differs from the node's claims")
    if not hmac.compare_digest(claimed_tls_spki_sha256, actual_tls_spki_sha256):
        raise TlsKeyNotBound(
            "the quote binds a TLS key other than the one this channel presents "
            f"(bound {claimed_tls_spki_sha256.hex()[:16]}…, channel {actual_tls_spki_sha256.hex()[:16]}…)"
        )
    if not hmac.compare_digest(claimed_job_digest, expected_job_digest):
        raise JobDigestMismatch(
            "the node runs another job than the one agreed to: "
            f"node {claimed_job_digest.hex()[:16]}…, expected {expected_job_digest.hex()[:16]}…"
        )

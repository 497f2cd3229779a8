"""Report-data binding: TLS key, job digest and nonce under a domain tag (DESIGN.md §4)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enclavefl.errors import JobDigestMismatch, NonceMismatch, ReportDataMismatch, TlsKeyNotBound
from enclavefl.tee.binding import REPORT_DATA_DOMAIN, compute_report_data, spki_sha256
from enclavefl.tee.verify.report_data import check_report_data

TLS = hashlib.sha256(b"tls").digest()
JOB = hashlib.sha256(b"job").digest()
NONCE = hashlib.sha256(b"nonce").digest()


def _check(report_data: bytes, **overrides: bytes) -> None:
    values = {
        "claimed_tls_spki_sha256": TLS,
        "claimed_job_digest": JOB,
        "actual_tls_spki_sha256": TLS,
        "expected_job_digest": JOB,
        "nonce": NONCE,
    }
    values.update(overrides)
    check_report_data(report_data, **values)


def test_report_data_is_the_domain_separated_hash_followed_by_the_nonce() -> None:
    expected = hashlib.sha256(b"enclavefl/report-data/v1\x00" + TLS + JOB + NONCE).digest() + NONCE

    assert REPORT_DATA_DOMAIN == b"enclavefl/report-data/v1"
    assert compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=NONCE) == expected


@pytest.mark.parametrize("field", ["tls_spki_sha256", "job_digest", "nonce"])
def test_inputs_must_be_32_bytes(field: str) -> None:
    values = {"tls_spki_sha256": TLS, "job_digest": JOB, "nonce": NONCE, field: b"\x00" * 31}

    with pytest.raises(ValueError, match=field):
        compute_report_data(**values)


def test_matching_report_data_passes() -> None:
    _check(compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=NONCE))


def test_another_nonce_is_reported_as_replay() -> None:
    old = compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=bytes(32))

    with pytest.raises(NonceMismatch, match="replayed or stale"):
        _check(old)


def test_claims_other_than_the_bound_ones_are_refused() -> None:
    bound = compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=NONCE)
    other = hashlib.sha256(b"other").digest()

    with pytest.raises(ReportDataMismatch, match="claims not bound by the quote") as caught:
        _check(bound, claimed_job_digest=other, expected_job_digest=other)
    assert type(caught.value) is ReportDataMismatch


def test_bound_key_other_than_the_channels_is_refused() -> None:
    channel_key = hashlib.sha256(b"mitm").digest()

    with pytest.raises(TlsKeyNotBound, match=channel_key.hex()[:16]):
        _check(
            compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=NONCE), actual_tls_spki_sha256=channel_key
        )


def test_bound_job_other_than_the_agreed_one_shows_both_digests() -> None:
    agreed = hashlib.sha256(b"agreed job").digest()

    with pytest.raises(JobDigestMismatch) as caught:
        _check(compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=NONCE), expected_job_digest=agreed)
    assert JOB.hex()[:16] in str(caught.value)
    assert agreed.hex()[:16] in str(caught.value)


@pytest.mark.parametrize("length", [0, 32, 63, 65])
def test_report_data_of_the_wrong_size_is_refused(length: int) -> None:
    with pytest.raises(ReportDataMismatch, match="expected 64"):
        _check(b"\x00" * length)


def test_short_claim_from_the_node_is_a_mismatch_not_a_crash() -> None:
    with pytest.raises(ReportDataMismatch, match="claimed TLS key hash"):
        _check(compute_report_data(tls_spki_sha256=TLS, job_digest=JOB, nonce=NONCE), claimed_tls_spki_sha256=b"x")


def test_spki_hash_is_the_same_for_key_certificate_and_their_der() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = hashlib.sha256(spki).digest()

    assert spki_sha256(key.public_key()) == expected
    assert spki_sha256(cert) == expected
    assert spki_sha256(cert.public_bytes(serialization.Encoding.DER)) == expected
    assert spki_sha256(spki) == expected


def test_spki_hash_of_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="neither a DER certificate nor a DER public key"):
        spki_sha256(b"garbage")

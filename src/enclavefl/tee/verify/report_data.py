"""The owners' check of a quote's report data: it binds their nonce, the node's TLS key and the agreed job.

    check_report_data(verified.report_data, claimed_tls_spki_sha256=bundle.node_spki_sha256,
                      claimed_job_digest=bundle.job_digest, actual_tls_spki_sha256=channel_key_hash,
                      expected_job_digest=job.digest(), nonce=nonce)     # or the precise ReportDataMismatch leaf

The node only computes report data (tee/binding.py's `compute_report_data`); this check runs where a quote is
verified (owners, auditors), so it stays out of the enclave's import closure.
"""

from __future__ import annotations

import hmac

from enclavefl.errors import JobDigestMismatch, NonceMismatch, ReportDataMismatch, TlsKeyNotBound
from enclavefl.tee.binding import HASH_SIZE, REPORT_DATA_SIZE, compute_report_data


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
        if len(value) != HASH_SIZE:
            raise ValueError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
    if len(report_data) != REPORT_DATA_SIZE:
        raise ReportDataMismatch(f"report data is {len(report_data)} bytes, expected {REPORT_DATA_SIZE}")
    if not hmac.compare_digest(report_data[HASH_SIZE:], nonce):
        raise NonceMismatch("evidence answers another nonce: replayed or stale")
    for name, value in (
        ("claimed TLS key hash", claimed_tls_spki_sha256),
        ("claimed job digest", claimed_job_digest),
    ):
        if len(value) != HASH_SIZE:
            raise ReportDataMismatch(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")
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

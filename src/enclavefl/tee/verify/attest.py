"""The recipe a data owner runs before it sends anything: verify the quote, the policy and the binding."""

from __future__ import annotations

from enclavefl.tee.evidence import AttestationBundle
from enclavefl.tee.verify.claims import verify_evidence
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.report_data import check_report_data
from enclavefl.tee.verify.verified import VerifiedEnclave


def verify_node(
    bundle: AttestationBundle,
    *,
    policy: AttestationPolicy,
    nonce: bytes,
    expected_job_digest: bytes,
    channel_spki_sha256: bytes,
    now: int,
) -> VerifiedEnclave:
    """Return the verified enclave only if the quote, the policy and the report-data binding all hold.

    `channel_spki_sha256` is the hash of the key the data owner actually talks to: the TLS peer
    certificate's SPKI on the network, the node's signing key in process. Raises an AttestationError leaf.
    """
    verified = verify_evidence(bundle.evidence, policy=policy, now=now)
    check_report_data(
        verified.report_data,
        claimed_tls_spki_sha256=bundle.node_spki_sha256,
        claimed_job_digest=bundle.job_digest,
        actual_tls_spki_sha256=channel_spki_sha256,
        expected_job_digest=expected_job_digest,
        nonce=nonce,
    )
    return verified

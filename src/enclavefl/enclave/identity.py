"""The node's attested key pair (signs receipts; the TLS key data owners pin) and the evidence that binds it."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.errors import CheckpointError
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.binding import compute_report_data, spki_sha256
from enclavefl.tee.evidence import AttestationBundle


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    """The node's attested key pair, generated inside the enclave and never written unsealed."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(private_key=ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_private_der(cls, der: bytes) -> NodeIdentity:
        """The identity a sealed checkpoint carries (PKCS#8 DER), so a restarted node keeps signing one chain."""
        key = serialization.load_der_private_key(der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise CheckpointError("the checkpointed node key is not an ECDSA P-256 key")
        return cls(private_key=key)

    def private_der(self) -> bytes:
        """PKCS#8 DER of the private key: only ever handed to the sealed checkpoint."""
        return self.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def public_key_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def spki_sha256(self) -> bytes:
        return spki_sha256(self.private_key.public_key())


def attest(identity: NodeIdentity, tee: TeeBackend, *, job_digest: bytes, nonce: bytes) -> AttestationBundle:
    """Evidence binding the node's key, the job digest and the caller's fresh nonce."""
    report_data = compute_report_data(tls_spki_sha256=identity.spki_sha256, job_digest=job_digest, nonce=nonce)
    return AttestationBundle(
        evidence=tee.evidence(report_data),
        node_spki_sha256=identity.spki_sha256,
        job_digest=job_digest,
        node_public_key_pem=identity.public_key_pem,
    )

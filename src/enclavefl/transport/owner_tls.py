"""The owners' side of the node's TLS and join: credentials, the certificate fetch and pin, the signed join.

    creds = OwnerCredentials.load("alice.key", "alice.crt")          # or .generate("alice"), then .save(...)
    pem = fetch_server_certificate("node:7443")                        # trust on first use, only to attest
    require_pinned_certificate(now_presented, pem, address="node:7443")  # CertificateMismatch if it changed
    signature = sign_join(creds.private_key, role=Role.DATA_OWNER, name="alice", ...)

Only data owners and the model owner run this: it lives apart from transport/tls.py and transport/auth.py (the
node's certificate and its JoinAuthority) so that none of it is in the enclave's import closure
(tests/enclave/test_tcb.py).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.errors import CertificateMismatch, ConfigError, ProtocolError
from enclavefl.tee.binding import spki_sha256
from enclavefl.transport.auth import Role, join_transcript
from enclavefl.transport.tls import NODE_TLS_NAME, private_key_pem, self_signed_certificate, split_address


def require_pinned_certificate(presented_pem: bytes, pinned_pem: bytes, *, address: str) -> None:
    """Raise CertificateMismatch unless the node presents the certificate attested earlier (DER equality)."""
    presented = x509.load_pem_x509_certificate(presented_pem)
    pinned = x509.load_pem_x509_certificate(pinned_pem)
    if presented.public_bytes(serialization.Encoding.DER) != pinned.public_bytes(serialization.Encoding.DER):
        raise CertificateMismatch(
            f"the node at {address} now presents another TLS certificate "
            f"(key {spki_sha256(presented).hex()[:16]}…) than the attested one "
            f"(key {spki_sha256(pinned).hex()[:16]}…): refusing to talk to it; attest it again"
        )


def fetch_server_certificate(address: str, *, timeout: float = 10.0) -> bytes:
    """The certificate a TLS server at HOST:PORT presents, unverified (trust on first use, for Attest only)."""
    host, port = split_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # deliberately unverified: attestation then vouches for this key
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=NODE_TLS_NAME) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise ProtocolError(f"cannot reach the node at {address}: {exc}") from None
    if der is None:
        raise ProtocolError(f"the node at {address} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerCredentials:
    """A data owner's (or model owner's) signing key and the self-signed certificate enrolled in the job spec."""

    private_key: ec.EllipticCurvePrivateKey
    certificate_pem: bytes

    @classmethod
    def generate(cls, name: str) -> OwnerCredentials:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(private_key=key, certificate_pem=self_signed_certificate(key, common_name=name))

    @classmethod
    def load(cls, key_path: str | Path, certificate_path: str | Path) -> OwnerCredentials:
        """Read a PEM key and certificate; the certificate must hold the key's public half."""
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"{key_path}: expected an ECDSA P-256 private key")
        cert_pem = Path(certificate_path).read_bytes()
        if spki_sha256(key.public_key()) != certificate_spki_sha256(cert_pem):
            raise ConfigError(f"{certificate_path}: the certificate does not hold the key in {key_path}")
        return cls(private_key=key, certificate_pem=cert_pem)

    def save(self, key_path: str | Path, certificate_path: str | Path) -> None:
        """Write the key (mode 0600) and the certificate: the owner's own secret, on the owner's machine."""
        key_file = Path(key_path)
        key_file.touch(mode=0o600, exist_ok=False)
        key_file.write_bytes(private_key_pem(self.private_key))
        Path(certificate_path).write_bytes(self.certificate_pem)


def sign_join(
    private_key: ec.EllipticCurvePrivateKey,
    *,
    role: Role,
    name: str,
    job_digest: bytes,
    node_spki_sha256: bytes,
    challenge: bytes,
) -> bytes:
    """The owner's side: sign the join transcript for the node it attested."""
    transcript = join_transcript(
        role=role, name=name, job_digest=job_digest, node_spki_sha256=node_spki_sha256, challenge=challenge
    )
    return private_key.sign(transcript, ec.ECDSA(hashes.SHA256()))


def certificate_spki_sha256(certificate_pem: bytes) -> bytes:
    """SHA-256 of the certificate's SubjectPublicKeyInfo: what the quote's report data binds."""
    return spki_sha256(x509.load_pem_x509_certificate(certificate_pem))

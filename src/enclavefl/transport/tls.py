"""TLS material for the node and the owners: self-signed certificates made in process, and certificate pinning.

The node's certificate carries its attested P-256 key (NodeIdentity); the key is handed to gRPC as PEM bytes in
memory and never written to disk. A data owner fetches the certificate once (trust on first use, only to ask for
attestation), verifies the evidence binds that certificate's key, and from then on uses a channel whose only
trusted root is that certificate: a node presenting any other certificate fails the TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enclavefl.errors import CertificateMismatch, ConfigError, ProtocolError
from enclavefl.tee.binding import spki_sha256

NODE_TLS_NAME = "enclavefl-node"  # the name in the node certificate; clients override the target name to it
CERTIFICATE_VALIDITY = dt.timedelta(days=365)


def self_signed_certificate(
    private_key: ec.EllipticCurvePrivateKey, *, common_name: str, now: dt.datetime | None = None
) -> bytes:
    """A PEM certificate for `private_key`, signed by itself, valid for NODE_TLS_NAME (pinning, not PKI)."""
    issued = now or dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - dt.timedelta(days=1))
        .not_valid_after(issued + CERTIFICATE_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NODE_TLS_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def private_key_pem(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM of a key, for gRPC's in-memory credentials only (never written to disk by the node)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate_spki_sha256(certificate_pem: bytes) -> bytes:
    """SHA-256 of the certificate's SubjectPublicKeyInfo: what the quote's report data binds."""
    return spki_sha256(x509.load_pem_x509_certificate(certificate_pem))


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


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"node address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


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

"""TLS material for the node and the owners: self-signed certificates made in process, and certificate pinning.

The node's certificate carries its attested P-256 key (NodeIdentity); the key is handed to gRPC as PEM bytes in
memory and never written to disk. A data owner fetches the certificate once (trust on first use, only to ask for
attestation), verifies the evidence binds that certificate's key, and from then on uses a channel whose only
trusted root is that certificate: a node presenting any other certificate fails the TLS handshake.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enclavefl.errors import ConfigError

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


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"node address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)

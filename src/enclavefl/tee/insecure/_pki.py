"""The simulated platform's test certificate hierarchy, shaped like Intel's SGX PKI.

    root CA (self-signed, P-256, CN "enclavefl INSECURE simulation Root CA")
    ├── PCK Processor CA ──> PCK leaf (carries the SGX extension, signs QE reports)
    └── TCB Signing cert (signs TCB info and QE identity)

Keys are stored as unencrypted PKCS#8 PEM files with mode 0600: anyone who can read the platform
directory can forge this platform's evidence, which is exactly why it is insecure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enclavefl.core.durable import write_atomically
from enclavefl.errors import TeeUnavailable
from enclavefl.tee.insecure._sgx_extension import SGX_EXTENSION_OID, PckTcb, encode_sgx_extension

SIMULATION_CN_MARKER = "enclavefl INSECURE simulation"
ROOT_CA_CN = f"{SIMULATION_CN_MARKER} Root CA"
PCK_CA_CN = f"{SIMULATION_CN_MARKER} PCK Processor CA"
PCK_LEAF_CN = f"{SIMULATION_CN_MARKER} PCK Certificate"
TCB_SIGNING_CN = f"{SIMULATION_CN_MARKER} TCB Signing"

# Certificates cover a wide window around creation so that tests with an injected `now` a little in
# the past or future still exercise collateral expiry (30 days), not certificate expiry.
_CERT_BACKDATE = dt.timedelta(days=365)
_CERT_LIFETIME = dt.timedelta(days=20 * 365)

_KEY_FILES = ("root_ca.key", "pck_ca.key", "pck_leaf.key", "tcb_signing.key")
_CERT_FILES = ("root_ca.pem", "pck_ca.pem", "tcb_signing.pem")


@dataclass(frozen=True, slots=True, kw_only=True)
class TestHierarchy:
    """Keys and certificates of one simulated platform."""

    root_key: ec.EllipticCurvePrivateKey
    root_cert: x509.Certificate
    pck_ca_key: ec.EllipticCurvePrivateKey
    pck_ca_cert: x509.Certificate
    pck_leaf_key: ec.EllipticCurvePrivateKey
    tcb_signing_key: ec.EllipticCurvePrivateKey
    tcb_signing_cert: x509.Certificate


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "enclavefl (INSECURE simulation, not Intel)"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _issue(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca_path_length: int | None,
    is_ca: bool,
    extra: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    if is_ca:
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
    else:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=True,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate_hierarchy(created_at: dt.datetime) -> TestHierarchy:
    """Fresh keys and certificates valid from a year before `created_at` for twenty years."""
    not_before, not_after = created_at - _CERT_BACKDATE, created_at + _CERT_LIFETIME
    root_key, pck_ca_key, tcb_key = _new_key(), _new_key(), _new_key()
    root_name = _name(ROOT_CA_CN)
    root = _issue(
        subject=root_name,
        public_key=root_key.public_key(),
        issuer=root_name,
        issuer_key=root_key,
        not_before=not_before,
        not_after=not_after,
        ca_path_length=1,
        is_ca=True,
    )
    pck_ca = _issue(
        subject=_name(PCK_CA_CN),
        public_key=pck_ca_key.public_key(),
        issuer=root_name,
        issuer_key=root_key,
        not_before=not_before,
        not_after=not_after,
        ca_path_length=0,
        is_ca=True,
    )
    tcb = _issue(
        subject=_name(TCB_SIGNING_CN),
        public_key=tcb_key.public_key(),
        issuer=root_name,
        issuer_key=root_key,
        not_before=not_before,
        not_after=not_after,
        ca_path_length=None,
        is_ca=False,
    )
    return TestHierarchy(
        root_key=root_key,
        root_cert=root,
        pck_ca_key=pck_ca_key,
        pck_ca_cert=pck_ca,
        pck_leaf_key=_new_key(),
        tcb_signing_key=tcb_key,
        tcb_signing_cert=tcb,
    )


def issue_pck_leaf(hierarchy: TestHierarchy, tcb: PckTcb) -> x509.Certificate:
    """A PCK leaf for the platform's PCK key carrying `tcb` in Intel's SGX extension."""
    extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), encode_sgx_extension(tcb))
    ca = hierarchy.pck_ca_cert
    return _issue(
        subject=_name(PCK_LEAF_CN),
        public_key=hierarchy.pck_leaf_key.public_key(),
        issuer=ca.subject,
        issuer_key=hierarchy.pck_ca_key,
        not_before=ca.not_valid_before_utc,
        not_after=ca.not_valid_after_utc,
        ca_path_length=None,
        is_ca=False,
        extra=(extension,),
    )


def build_empty_crl(
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    last_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    """A DER CRL revoking nothing, valid from `last_update` to `next_update`."""
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(last_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to a new file readable only by its owner (0600), atomically."""
    write_atomically(path, data, mode=0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def save_hierarchy(hierarchy: TestHierarchy, directory: Path) -> None:
    """Persist keys (0600) and certificates (PEM) into `directory`."""
    keys = (hierarchy.root_key, hierarchy.pck_ca_key, hierarchy.pck_leaf_key, hierarchy.tcb_signing_key)
    for filename, key in zip(_KEY_FILES, keys, strict=True):
        write_private_file(directory / filename, _key_pem(key))
    certs = (hierarchy.root_cert, hierarchy.pck_ca_cert, hierarchy.tcb_signing_cert)
    for filename, cert in zip(_CERT_FILES, certs, strict=True):
        write_private_file(directory / filename, cert.public_bytes(serialization.Encoding.PEM))


def _read(directory: Path, filename: str) -> bytes:
    try:
        return (directory / filename).read_bytes()
    except FileNotFoundError as exc:
        raise TeeUnavailable(f"simulated platform at {directory} is incomplete: {filename} missing") from exc


def _load_key(directory: Path, filename: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(_read(directory, filename), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TeeUnavailable(f"simulated platform at {directory}: {filename} is not an EC private key")
    return key


def load_hierarchy(directory: Path) -> TestHierarchy:
    """Read back what `save_hierarchy` wrote."""
    root_key, pck_ca_key, pck_leaf_key, tcb_key = (_load_key(directory, f) for f in _KEY_FILES)
    root, pck_ca, tcb = (x509.load_pem_x509_certificate(_read(directory, f)) for f in _CERT_FILES)
    return TestHierarchy(
        root_key=root_key,
        root_cert=root,
        pck_ca_key=pck_ca_key,
        pck_ca_cert=pck_ca,
        pck_leaf_key=pck_leaf_key,
        tcb_signing_key=tcb_key,
        tcb_signing_cert=tcb,
    )

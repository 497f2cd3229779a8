"""One key, one party: the identity of an enrolled data owner, and the check that no key is enrolled twice.

    enrolment_fingerprint(owner)       # SHA-256 (hex) of the enrolled public key (SPKI DER)
    check_one_party_per_key(owners)    # DuplicateEnrolment naming both names

The node authenticates a data owner by the key it signs its Join with (transport/auth.py), so two names enrolled
with one key (the same certificate twice, or two certificates over one key) are one party that counts twice: two
of "K" contributions, two votes in any majority, and one process's uploads racing the other's. The job spec
refuses it wherever it is built or loaded (JobSpec runs this check), so `job init`, every data owner and the
enclave refuse such a job alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enclavefl.errors import DuplicateEnrolment


class Enrolled(Protocol):
    """An enrolled data owner as the job spec holds it (core.job.DataOwnerSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def certificate_pem(self) -> str: ...
    @property
    def public_key_pem(self) -> str: ...


def enrolment_fingerprint(owner: Enrolled) -> str:
    """SHA-256 (hex) of the enrolled key's SubjectPublicKeyInfo (DER), from the certificate or the bare key.

    An enrolment whose PEM does not parse is identified by its text (the node refuses it when it loads the keys).
    """
    pem = owner.certificate_pem or owner.public_key_pem
    if not pem:
        return ""
    data = pem.encode()
    try:
        key = (
            x509.load_pem_x509_certificate(data).public_key()
            if b"CERTIFICATE" in data
            else serialization.load_pem_public_key(data)
        )
        spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError):
        return "unparsed:" + hashlib.sha256(pem.strip().encode()).hexdigest()
    return hashlib.sha256(spki).hexdigest()


def check_one_party_per_key(owners: Iterable[Enrolled]) -> None:
    """DuplicateEnrolment when two enrolled names share one key (one certificate enrolled under two names)."""
    seen: dict[str, str] = {}
    for owner in owners:
        fingerprint = enrolment_fingerprint(owner)
        if not fingerprint:
            continue
        first = seen.setdefault(fingerprint, owner.name)
        if first != owner.name:
            raise DuplicateEnrolment(
                f"data_owners: {first!r} and {owner.name!r} are enrolled with the same key (SHA-256 "
                f"{fingerprint.removeprefix('unparsed:')[:16]}…): one key is one party, which would count twice "
                "towards K and race its own uploads. Enroll each data owner once, with its own certificate"
            )

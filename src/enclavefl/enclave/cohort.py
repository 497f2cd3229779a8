"""The enclave's draw of each round's cohort, from a secret only the enclave holds, fixed per round number.

    cohorts = RoundCohorts.for_job(job, identity)      # None for a job without cohorts
    cohort = cohorts.draw(3)                            # round 3's members and the commitments its receipt lists
    member, token = cohorts.claim(3, "alice")           # what alice's own status tells her

Why derived, not drawn afresh: the secret is HKDF over the node's private key, which the enclave made with the
platform CSPRNG and seals in every checkpoint from round 0 on. So the cohort of round r is one value for the
whole job: a restarted or rolled-back enclave (any sealed state of this job) draws the same members again, a
retried round keeps its cohort, and two copies of the enclave agree on it, which keeps the majority-of-the-cohort
release quorums intersecting. Nobody outside the enclave knows the key, so nobody can predict or choose a cohort.
Within a round, the members are the M owners with the smallest HMAC scores: a uniform M-subset, no modulo bias.
A sealed round counts its cohort's signatures (enclave/release.py): every copy of the enclave draws the same cohort,
so two majorities of it intersect as two majorities of the enrolled owners do. This module is an optional part of
the enclave (enclave/parts.py): a job without cohorts never imports it.
docs/threat-model.md ("Cohorts") has the host's options and their bounds.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclavefl.core.cohort import member_commitment
from enclavefl.core.job import JobSpec
from enclavefl.enclave.identity import NodeIdentity

SECRET_INFO = b"enclavefl/cohort-secret/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundCohort:
    """Round `round`'s members and the sorted commitments to their tokens (what the receipt lists)."""

    round: int
    members: frozenset[str]
    commitments: tuple[bytes, ...]


class RoundCohorts:
    """Draws the cohorts of one job on one node key (cheap: N HMACs per round; the last draw is kept)."""

    def __init__(self, *, secret: bytes, job_digest: bytes, owners: tuple[str, ...], size: int) -> None:
        self._secret = secret
        self._job_digest = job_digest
        self._owners = owners
        self._size = size
        self._last: RoundCohort | None = None

    @classmethod
    def for_job(cls, job: JobSpec, identity: NodeIdentity) -> RoundCohorts | None:
        size = job.cohort_size
        if size is None:
            return None
        digest = job.digest()
        scalar = identity.private_key.private_numbers().private_value.to_bytes(32, "big")
        secret = HKDF(algorithm=hashes.SHA256(), length=32, salt=digest, info=SECRET_INFO).derive(scalar)
        return cls(secret=secret, job_digest=digest, owners=tuple(o.name for o in job.data_owners), size=size)

    @property
    def size(self) -> int:
        return self._size

    def draw(self, round_index: int) -> RoundCohort:
        """Round `round_index`'s cohort: the same for every attempt and every restart of this job's enclave."""
        last = self._last
        if last is not None and last.round == round_index:
            return last
        key = self._round_key(round_index)
        ranked = sorted(self._owners, key=lambda name: (_prf(key, b"draw", name), name))
        members = frozenset(ranked[: self._size])
        commitments = tuple(
            sorted(
                member_commitment(job_digest=self._job_digest, round_index=round_index, token=_prf(key, b"token", name))
                for name in members
            )
        )
        self._last = RoundCohort(round=round_index, members=members, commitments=commitments)
        return self._last

    def claim(self, round_index: int, owner: str) -> tuple[bool, bytes]:
        """(whether `owner` is in round `round_index`'s cohort, its token for the round): for its own status only."""
        return owner in self.draw(round_index).members, _prf(self._round_key(round_index), b"token", owner)

    def _round_key(self, round_index: int) -> bytes:
        return hmac.digest(self._secret, b"round" + struct.pack(">Q", round_index), "sha256")


def _prf(key: bytes, label: bytes, name: str) -> bytes:
    encoded = name.encode()
    return hmac.digest(key, label + struct.pack(">I", len(encoded)) + encoded, "sha256")

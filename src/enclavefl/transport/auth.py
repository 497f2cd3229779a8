"""Who is calling: data owners and the model owner authenticate by signing a node challenge (Join).

Why a signed challenge rather than mutual TLS: gRPC Python's server can only *require and verify* client
certificates, so an unenrolled peer would be cut off inside the TLS handshake, where the node can neither
count it nor tell it why. Here the channel is server-authenticated TLS (pinned by the owner after attestation)
and the owner proves possession of the key enrolled in the job spec:

    transcript = DOMAIN || role || 0x00 || name || 0x00 || job_digest || node_spki_sha256 || challenge
    signature  = ECDSA-P256-SHA256(owner key, transcript)

The challenge is fresh and single-use; the transcript names the node's attested key and the job, so a signature
cannot be replayed to another node or job. Join returns a random session token that the owner sends as call
metadata; it travels only inside the attested channel, so only the enclave ever sees it. A session expires
after `session_lifetime_seconds` (SessionExpired; the client joins again).

One key, one live session for a data owner: a join replaces that owner's earlier sessions. The join's answer says
how many it replaced, and every later call on a replaced session is refused with SessionReplaced, so two
processes holding one owner's key both hear of each other instead of one silently losing rounds to the other
(DuplicateUpdate, WrongRound). The model owner may hold up to MAX_SESSIONS_PER_PEER sessions (a watcher and a
`job` command at once; older ones are dropped). Replaced tokens are remembered up to MAX_REPLACED_SESSIONS, so
repeated joins cannot grow the node's memory.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.job import JobSpec
from enclavefl.errors import JobSpecError, NotEnrolled, SessionExpired, SessionReplaced

log = logging.getLogger(__name__)

JOIN_DOMAIN = b"enclavefl/join/v1\x00"
SESSION_METADATA_KEY = "enclavefl-session"
CHALLENGE_SIZE = 32
CHALLENGE_LIFETIME_SECONDS = 120.0
MAX_OPEN_CHALLENGES = 4096
DEFAULT_SESSION_LIFETIME_SECONDS = 12 * 3600.0
MAX_SESSIONS_PER_PEER = 4  # the model owner's; a data owner holds one
MAX_REPLACED_SESSIONS = 4096  # replaced tokens remembered (to say SessionReplaced rather than NotEnrolled)


class Role(enum.StrEnum):
    DATA_OWNER = "data-owner"
    MODEL_OWNER = "model-owner"


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """An authenticated caller: its role and, for data owners, its name in the job spec."""

    role: Role
    name: str


def join_transcript(*, role: Role, name: str, job_digest: bytes, node_spki_sha256: bytes, challenge: bytes) -> bytes:
    return b"".join(
        (JOIN_DOMAIN, role.value.encode(), b"\x00", name.encode(), b"\x00", job_digest, node_spki_sha256, challenge)
    )


def enrolled_keys(job: JobSpec) -> dict[tuple[Role, str], ec.EllipticCurvePublicKey]:
    """The public key of every party the job spec enrolls, from its certificate (or bare public key)."""
    keys: dict[tuple[Role, str], ec.EllipticCurvePublicKey] = {}
    for owner in job.data_owners:
        pem = owner.certificate_pem or owner.public_key_pem
        if pem:
            keys[(Role.DATA_OWNER, owner.name)] = _p256_key(pem, f"data_owners[{owner.name}]")
    if job.model_owner_certificate_pem:
        keys[(Role.MODEL_OWNER, "")] = _p256_key(job.model_owner_certificate_pem, "model_owner")
    return keys


class JoinAuthority:
    """The node's side: issues challenges, verifies joins, maps session tokens to peers; counts refusals."""

    def __init__(
        self,
        *,
        job: JobSpec,
        node_spki_sha256: bytes,
        monotonic: Callable[[], float] | None = None,
        session_lifetime_seconds: float = DEFAULT_SESSION_LIFETIME_SECONDS,
    ) -> None:
        self._job_digest = job.digest()
        self._node_spki_sha256 = node_spki_sha256
        self._keys = enrolled_keys(job)
        self._monotonic = monotonic or time.monotonic
        self._lock = threading.Lock()
        self._challenges: dict[bytes, float] = {}
        # keyed by SHA-256 of the token: a dict lookup then leaks nothing useful through its timing
        self._sessions: dict[bytes, tuple[Peer, float]] = {}
        self._session_lifetime = session_lifetime_seconds
        self._by_peer: dict[Peer, list[bytes]] = {}  # each party's live token keys, oldest first
        self._replaced: OrderedDict[bytes, Peer] = OrderedDict()  # token key -> whose session a newer join replaced
        self.refusals: Counter[str] = Counter()
        self.joins = 0  # successful joins (tests assert that a refused owner never got this far)

    def challenge(self) -> bytes:
        now = self._monotonic()
        value = secrets.token_bytes(CHALLENGE_SIZE)
        with self._lock:
            self._challenges = {c: t for c, t in self._challenges.items() if t > now}
            if len(self._challenges) >= MAX_OPEN_CHALLENGES:  # bound memory against challenge floods
                self._challenges.pop(next(iter(self._challenges)))
            self._challenges[value] = now + CHALLENGE_LIFETIME_SECONDS
        return value

    def join(self, *, role: Role, name: str, challenge: bytes, signature: bytes) -> tuple[bytes, int]:
        """A session token for an enrolled party that signed a fresh challenge, and how many live sessions of that
        data owner it replaced; NotEnrolled otherwise."""
        who = f"{role.value} {name!r}" if role is Role.DATA_OWNER else "the model owner"
        with self._lock:
            expiry = self._challenges.pop(bytes(challenge), None)
        if expiry is None or expiry <= self._monotonic():
            self._refuse("NotEnrolled", f"{who}: the join challenge is unknown, used or expired")
        key = self._keys.get((role, name if role is Role.DATA_OWNER else ""))
        if key is None:
            self._refuse("NotEnrolled", f"{who} is not enrolled in this job")
        transcript = join_transcript(
            role=role,
            name=name,
            job_digest=self._job_digest,
            node_spki_sha256=self._node_spki_sha256,
            challenge=challenge,
        )
        try:
            key.verify(signature, transcript, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            self._refuse("NotEnrolled", f"{who}: the join signature does not verify under the enrolled key")
        token = secrets.token_bytes(32)
        peer = Peer(role=role, name=name if role is Role.DATA_OWNER else "")
        now = self._monotonic()
        replaced = 0
        with self._lock:
            held = self._by_peer.setdefault(peer, [])  # this party's tokens, oldest first (no scan of everyone's)
            keep = MAX_SESSIONS_PER_PEER - 1 if role is Role.MODEL_OWNER else 0
            for stale in held[: max(0, len(held) - keep)]:
                held.remove(stale)
                _, expiry = self._sessions.pop(stale)
                if role is Role.DATA_OWNER and expiry > now:  # a live session: its holder hears it was replaced
                    replaced += 1
                    self._replaced[stale] = peer
                    if len(self._replaced) > MAX_REPLACED_SESSIONS:
                        self._replaced.popitem(last=False)
            self._sessions[_token_key(token)] = (peer, now + self._session_lifetime)
            held.append(_token_key(token))
            self.joins += 1
        log.info("%s joined", who)  # one line per join: the operator sees who takes part
        return token, replaced

    def peer(self, token: bytes | None, *, roles: tuple[Role, ...], counted: bool = True) -> Peer:
        """The authenticated peer behind a session token, if it has one of `roles`; NotEnrolled otherwise.

        `counted=False` when the caller counts the refusal itself (uploads: the worker's round tally).
        """
        found = replaced = None
        if token:
            with self._lock:
                found = self._sessions.get(_token_key(token))
                replaced = self._replaced.get(_token_key(token)) if found is None else None
        if replaced is not None:
            if counted:
                with self._lock:
                    self.refusals["SessionReplaced"] += 1
            raise SessionReplaced(
                f"the session of {replaced.role.value} {replaced.name!r} was replaced by a newer join with the same "
                "key: another process holds this owner's key (stop one of them), or this owner joined again"
            )
        if found is None:
            self._refuse("NotEnrolled", "the caller has not joined this job (no valid session)", counted=counted)
        peer, expiry = found
        if expiry <= self._monotonic():  # kept until that party joins again: it keeps hearing why
            if counted:
                with self._lock:
                    self.refusals["SessionExpired"] += 1
                log.warning("refused (SessionExpired): %s %r must join again", peer.role.value, peer.name)
            raise SessionExpired(
                f"the session of {peer.role.value} {peer.name!r} is older than {self._session_lifetime:g} s: join again"
            )
        if peer.role not in roles:
            self._refuse("NotEnrolled", f"this call is for the {' or '.join(r.value for r in roles)}", counted=counted)
        return peer

    def _refuse(self, reason: str, message: str, *, counted: bool = True) -> NoReturn:
        if counted:  # uncounted refusals are counted and logged by the caller (the worker's round tally)
            with self._lock:
                self.refusals[reason] += 1
            log.warning("refused (%s): %s", reason, message)
        raise NotEnrolled(message)


def _token_key(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _p256_key(pem: str, where: str) -> ec.EllipticCurvePublicKey:
    data = pem.encode()
    try:
        key = (
            x509.load_pem_x509_certificate(data).public_key()
            if b"CERTIFICATE" in data
            else serialization.load_pem_public_key(data)
        )
    except ValueError as exc:
        raise JobSpecError(f"{where}: unreadable certificate or key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise JobSpecError(f"{where}: the enrolled key must be ECDSA P-256")
    return key

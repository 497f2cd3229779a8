"""Data owners and the model owner against a remote node: attest first, pin, join, then act; check receipts.

Data owner:

    node = connect_data_owner("host:port", name="alice", job=job, policy=policy, credentials=creds)
    owner = DataOwner(name="alice", task=task, data=data, node=node.client, job=job, policy=policy)
    report = run_data_owner(owner, node)          # every round until the job ends; receipts verified each round

A data owner that must survive node restarts passes `reconnect=Reconnect(connect=lambda: connect_data_owner(...))`
and a `PersistentReceiptTracker` (owner/owner_state.py): when the node goes away, the owner connects again,
re-attests with a fresh nonce (the node may come back with another key, on another machine), and refuses a node
whose receipt chain does not extend the last one it verified (RollbackDetected).

Rounds close in two phases (core/acknowledgement.py): when the node shows a round as "signing", the owner checks
its sealed receipt, records it durably in the tracker's `signed_rounds`, and signs it back; the node releases the
aggregate only once every contributor did. An owner never uploads again for a round it signed
(RoundAlreadySigned) and refuses a node presenting another receipt for it (ConflictingReceipts, with both).

Model owner:

    session = ModelOwnerSession.connect("host:port", job=job, policy=policy, credentials=creds)
    session.submit_initial_model(weights)
    for summary in session.watch(): ...
    final = session.download_final()              # receipt chain and final model hash verified

Nothing is sent before the node's evidence verified: `connect_*` raise the precise AttestationError leaf.
This module does not import torch (the DataOwner it drives does).
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import SignedRounds, check_same_round
from enclavefl.core.clock import Clock, SystemClock
from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.receipts import (
    ReceiptTracker,
    RoundReceipt,
    SignedReceipt,
    check_update_included,
    verify_receipt_chain,
)
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import (
    CertificateMismatch,
    CodecError,
    CollateralExpired,
    CollateralFromTheFuture,
    NotEnrolled,
    ProtocolError,
    ReceiptError,
    TeeUnavailable,
    UpdateRejected,
)
from enclavefl.owner.masked_remote import GrpcMaskedRelay
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.privacy.epsilon import verify_epsilon_schedule
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.evidence import AttestationBundle, VerifiedEnclave
from enclavefl.tee.verify.attest import verify_node
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.auth import Role
from enclavefl.transport.grpc_client import NodeClient
from enclavefl.transport.tls import OwnerCredentials
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

if TYPE_CHECKING:
    from enclavefl.owner.data_owner import DataOwner
    from enclavefl.owner.masked_owner import MaskedOwner

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestedNode:
    """A client pinned to a node whose evidence verified under the caller's policy and nonce."""

    client: NodeClient
    verified: VerifiedEnclave
    node_public_key_pem: bytes  # the attested key: it signs the receipts
    # The evidence that verified, with its nonce and time: the model owner's receipts file embeds them so that a
    # third party can check the chain's key was attested (owner/provenance.py).
    bundle: AttestationBundle | None = None
    nonce: bytes = b""
    attested_at: int = 0
    signing_key: ec.EllipticCurvePrivateKey | None = None  # the caller's enrolled key: signs pending receipts


# Refusals that time can cure: the node's collateral expired (its host agent refreshes it) or is dated beyond the
# tolerated clock skew (the clocks converge, or the fresh bundle ages), or the node (its host agent not yet
# running) or our own PCCS could not provide collateral. Retried with a fresh nonce and a message; every other
# refusal is final at once.
TRANSIENT_REFUSALS: Final = (CollateralExpired, CollateralFromTheFuture, TeeUnavailable)
ATTEST_RETRY_DELAYS: Final = (2.0, 5.0, 10.0, 20.0)
# The longest one status long poll waits for the node to change; it answers at once when something happens.
STATUS_WAIT_SECONDS: Final = 2.0


def attest_remote_node(
    client: NodeClient,
    *,
    job: JobSpec,
    policy: AttestationPolicy,
    now: int,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retry_delays: tuple[float, ...] = ATTEST_RETRY_DELAYS,
    collateral: CollateralSource | None = None,
) -> AttestedNode:
    """Fresh nonce, Attest, verify quote + policy + binding to the pinned certificate's key and to `job`.

    With `collateral` (e.g. PccsCollateralSource of the owner's own PCCS) the quote is verified against what it
    fetches, not against the collateral the node sent.

    A refusal in TRANSIENT_REFUSALS is logged and retried after each of `retry_delays` (fresh nonce, `now` read
    again from `clock`); the last refusal is raised. The job's epsilon schedule is checked first
    (EpsilonScheduleMismatch: nothing is sent).
    """
    verify_epsilon_schedule(job)
    attempt = 0
    while True:
        nonce = secrets.token_bytes(32)
        try:
            bundle = client.attest(nonce)  # a node whose host agent has not written collateral yet: TeeUnavailable
            if collateral is not None:
                own = collateral.collateral_for(bundle.evidence.quote)
                bundle = dataclasses.replace(bundle, evidence=dataclasses.replace(bundle.evidence, collateral_json=own))
            verified = verify_node(
                bundle,
                policy=policy,
                nonce=nonce,
                expected_job_digest=job.digest(),
                channel_spki_sha256=client.pinned_spki_sha256,
                now=now,
            )
        except TRANSIENT_REFUSALS as exc:
            if attempt >= len(retry_delays):
                raise
            delay = retry_delays[attempt]
            log.warning(
                "attestation refused, possibly transient (%s: %s); nothing was sent; retrying in %g s (%d of %d)",
                type(exc).__name__,
                exc,
                delay,
                attempt + 1,
                len(retry_delays),
            )
            sleep(delay)
            now = int(clock.now()) if clock is not None else now + int(delay)
            attempt += 1
            continue
        return AttestedNode(
            client=client,
            verified=verified,
            node_public_key_pem=bundle.node_public_key_pem,
            bundle=bundle,
            nonce=nonce,
            attested_at=now,
        )


def connect_and_attest(
    address: str,
    *,
    role: Role,
    name: str,
    job: JobSpec,
    policy: AttestationPolicy,
    credentials: OwnerCredentials,
    clock: Clock | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    client: NodeClient | None = None,
    collateral: CollateralSource | None = None,
) -> AttestedNode:
    """Pin the node's certificate, verify its evidence, then join as `role` (the join is the first thing sent)."""
    client = client or NodeClient.connect(address, chunk_bytes=chunk_bytes)
    try:
        chosen_clock = clock or SystemClock()
        attested = attest_remote_node(
            client, job=job, policy=policy, now=int(chosen_clock.now()), clock=chosen_clock, collateral=collateral
        )
        client.join(role=role, name=name, private_key=credentials.private_key, job_digest=job.digest())
    except BaseException:
        client.close()
        raise
    return dataclasses.replace(attested, signing_key=credentials.private_key)


def connect_data_owner(
    address: str,
    *,
    name: str,
    job: JobSpec,
    policy: AttestationPolicy,
    credentials: OwnerCredentials,
    clock: Clock | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    collateral: CollateralSource | None = None,
) -> AttestedNode:
    """Attest the node at `address` and join as data owner `name`. Raises an AttestationError leaf on mismatch."""
    return connect_and_attest(
        address,
        role=Role.DATA_OWNER,
        name=name,
        job=job,
        policy=policy,
        credentials=credentials,
        clock=clock,
        chunk_bytes=chunk_bytes,
        collateral=collateral,
    )


@dataclass(slots=True, kw_only=True)
class DataOwnerReport:
    """What one data owner saw: rounds it contributed to, refusals, and the verified receipt chain head."""

    contributed: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (round, error class name)
    # rounds whose upload went out but whose answer was lost (the node went away meanwhile): whether it counted is
    # unknown, so the owner uploads again if the node it reconnects to asks for the round
    interrupted: list[int] = field(default_factory=list)
    final_state: JobState = JobState.RUNNING
    final_message: str = ""
    receipt_head: RoundReceipt | None = None
    reconnects: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect:
    """How a data owner gets back to a node that went away: `connect` again (fresh nonce, fresh pin), patiently.

    Waits start at `retry_seconds` and double up to `max_retry_seconds`; `on_retry` hears of every failed try
    (so a user is never left in silence while the node is unreachable).
    """

    connect: Callable[[], AttestedNode]
    give_up_after_seconds: float = 120.0
    retry_seconds: float = 0.5
    max_retry_seconds: float = 2.0
    on_retry: Callable[[RetryNotice], None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryNotice:
    """One failed attempt to reach the node: what failed, the next wait, and how long trying goes on."""

    attempt: int
    error: Exception
    retry_in_seconds: float
    gives_up_in_seconds: float
    give_up_after_seconds: float

    def describe(self) -> str:
        what = " ".join(str(self.error).split())[:200]
        return (
            f"node unreachable (attempt {self.attempt}: {type(self.error).__name__}: {what}); retrying in "
            f"{self.retry_in_seconds:.1f} s, giving up in {self.gives_up_in_seconds:.0f} s "
            f"(--connect-timeout {self.give_up_after_seconds:g})"
        )


# What a node that went away (crashed, restarted, now another process with another session table) looks like.
_NODE_GONE = (ProtocolError, CertificateMismatch, NotEnrolled)


def run_data_owner(
    owner: DataOwner,
    node: AttestedNode,
    *,
    tracker: ReceiptTracker | None = None,
    wait_seconds: float = STATUS_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    reconnect: Reconnect | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> DataOwnerReport:
    """Contribute to every round the node opens until the job ends; verify the receipt chain after each round.

    When a round is sealed (phase "signing") the owner records its receipt (durably, with a
    PersistentReceiptTracker) and signs it back; it never uploads a round it signed (RoundAlreadySigned) and
    refuses a node showing another receipt for it (ConflictingReceipts). With `reconnect`, a node that goes away
    is connected to and attested again; its chain must extend the last receipt `tracker` verified, else
    RollbackDetected is raised (and nothing more is sent to it).

    Nothing waits on a timer: when there is nothing to do the owner asks the node for its status with the last
    one it saw (a long poll, at most `wait_seconds`), and the node answers as soon as a round opens, seals or is
    released, or the job ends.
    """
    tracker = tracker or ReceiptTracker(job_digest=owner.job.digest())
    if isinstance(tracker, PersistentReceiptTracker):  # what this owner signed survives its restarts
        owner.signed_rounds = tracker.signed_rounds
    _use_node(owner, node)
    masked: MaskedOwner | None = None
    if owner.job.masked:  # imported here: masked_owner needs torch, which this module leaves to the owner object
        from enclavefl.owner.masked_owner import MaskedOwner

        masked = MaskedOwner(owner=owner, relay=GrpcMaskedRelay(node.client, timeout=1.0))
    report = DataOwnerReport()
    done: set[tuple[int, int]] = set()  # (round, attempt) already answered
    signed: set[int] = set()  # rounds whose pending receipt this owner signed on the current connection
    known: tuple[SignedReceipt, ...] = ()  # the node's released chain as last known on this connection
    fresh = False  # just reconnected: check the chain before anything else
    idle: NodeStatus | None = None  # the status last seen with nothing to do: the next call waits for a change
    answered: NodeStatus | None = None  # the status the node answered an upload or a signature with: act on it
    while True:
        try:
            if answered is not None:
                status, answered = answered, None
            else:
                status = node.client.node_status(seen=idle, wait_seconds=wait_seconds)
            sleep(0)  # no wait: the caller's sleep hook is also its cancellation point (DataOwnerClient.cancel)
            idle = None
            pending = status.pending if status.phase is RoundPhase.SIGNING else None
            # "Signing" with no receipt: the round was released while the node answered, so the status (and its
            # rounds_completed) is stale. The chain is fetched, not reused: the stale count would hide the round
            # this owner just signed and accuse an honest node of dropping it (RoundAlreadySigned).
            stale = status.phase is RoundPhase.SIGNING and pending is None
            # A node behind us is refused here as a rollback (observe raises RollbackDetected).
            released = report.receipt_head.round if report.receipt_head is not None else 0  # last released seen
            behind_or_ahead = status.rounds_completed != tracker.head_round or status.rounds_completed != released
            if fresh or stale or pending is not None or behind_or_ahead:
                chain = _released_chain(node, status, known, owner.signed_rounds, fetch=fresh or stale)
                known = chain
                pending = _unless_released(pending, chain, node.node_public_key_pem)
                owner.signed_rounds.check_node_holds_signed_round(len(chain), pending)  # RoundAlreadySigned
                extends = pending is not None and pending.receipt.round == len(chain) + 1
                presented = (*chain, pending) if pending is not None and extends else chain
                owner.signed_rounds.check_chain(presented, node.node_public_key_pem)  # ConflictingReceipts
                to_sign = pending if pending is not None and pending.receipt.round not in signed else None
                _observe(tracker, presented, node.node_public_key_pem, defer_save=to_sign is not None)
                report.receipt_head = chain[-1].receipt if chain else None
                fresh = False
                head = report.receipt_head
                if head is not None and head.round in owner.accepted_updates:
                    check_update_included(head, owner.accepted_updates[head.round])
                if to_sign is not None:
                    try:  # records (durably) and signs; the node answers once the round is released
                        answered = node.client.acknowledge_for_status(owner.sign_receipt(to_sign, chain=chain))
                    except UpdateRejected as exc:  # e.g. the node moved on meanwhile: look again, sign again if asked
                        log.warning(
                            "%s: signature for round %d refused: %s: %s",
                            owner.name,
                            to_sign.receipt.round,
                            type(exc).__name__,
                            exc,
                        )
                    else:
                        signed.add(to_sign.receipt.round)
                        continue  # released by now, most likely: act on the node's answer without asking again
        except _NODE_GONE as exc:
            idle = None
            if reconnect is None:
                raise
            log.info("%s: the node went away (%s: %s); reconnecting", owner.name, type(exc).__name__, exc)
            if owner.report is not None:
                owner.report(
                    f"[{owner.name}] the node went away ({type(exc).__name__}); reconnecting and attesting it "
                    f"again for up to {reconnect.give_up_after_seconds:g} s"
                )
            node.client.close()
            node = reconnect_to_node(reconnect, sleep=sleep, monotonic=monotonic)
            _use_node(owner, node)
            report.reconnects += 1
            done.clear()  # a restarted node redoes its open round from the checkpoint: upload again
            signed.clear()  # ... or asks again for the signatures of its sealed round: sign the same receipt again
            fresh = True
            continue
        if status.job_state in (JobState.FINISHED, JobState.FAILED):
            report.final_state, report.final_message = status.job_state, status.job_message
            return report
        key = (status.round, status.attempt)
        if status.phase is RoundPhase.OPEN and key not in done:
            done.add(key)
            try:
                if masked is not None:  # masked mode: keys, shares, masked upload, unmask answer
                    masked.relay = GrpcMaskedRelay(node.client, timeout=owner.job.round_deadline_seconds)
                    masked.run_round(status.round)
                else:  # RoundAlreadySigned (not caught) if this owner signed the round; the node answers the upload
                    answered = owner.run_round(  # once the round is sealed (or after wait_seconds)
                        status.round,
                        global_model=carried_model(status),
                        send=functools.partial(node.client.upload_for_status, wait_seconds=wait_seconds),
                    )
                report.contributed.append(status.round)
                idle = status  # uploaded: wait for the round to seal (other contributions do not wake us)
            except UpdateRejected as exc:  # the node refused it; the round goes on without us
                log.warning("%s: round %d update refused: %s: %s", owner.name, status.round, type(exc).__name__, exc)
                report.refused.append((status.round, type(exc).__name__))
                idle = status
            except (ProtocolError, CertificateMismatch) as exc:
                if reconnect is None:
                    raise
                # the next status call finds out whether the node is gone (and reconnects) or only the call failed
                log.warning("%s: round %d upload failed: %s: %s", owner.name, status.round, type(exc).__name__, exc)
                report.interrupted.append(status.round)
                done.discard(key)
            continue
        idle = status


def _observe(tracker: ReceiptTracker, chain: Sequence[SignedReceipt], key_pem: bytes, *, defer_save: bool) -> None:
    if isinstance(tracker, PersistentReceiptTracker):
        tracker.observe(chain, key_pem, defer_save=defer_save)  # the signature's record writes it in one go
    else:
        tracker.observe(chain, key_pem)


def _use_node(owner: DataOwner, node: AttestedNode) -> None:
    owner.node, owner.verified = node.client, node.verified
    owner.node_public_key_pem, owner.signing_key = node.node_public_key_pem, node.signing_key


def _unless_released(
    pending: SignedReceipt | None, chain: Sequence[SignedReceipt], key_pem: bytes
) -> SignedReceipt | None:
    """`pending`, or None if `chain` (fetched after it) already released its round: the release happened between
    the two calls, and the released receipt must be the one that was pending (ConflictingReceipts otherwise)."""
    if pending is None or pending.receipt.round > len(chain):
        return pending
    check_same_round(chain[pending.receipt.round - 1], pending, key_pem)
    return None


def carried_model(status: NodeStatus) -> bytes | None:
    """The open round's model the status carried (a small model), or None: then the owner downloads it.

    It comes over the attested channel like a download; its digest must still be the one the status names.
    """
    if not status.global_model:
        return None
    try:
        digest = decode_weights(status.global_model).sha256().hex()
    except CodecError as exc:
        raise ProtocolError(f"round {status.round}: the node's status carried a malformed model: {exc}") from None
    if not hmac.compare_digest(digest, status.global_model_sha256):
        raise ProtocolError(
            f"round {status.round}: the node's status carried a model whose digest {digest[:16]}… is not the "
            f"{status.global_model_sha256[:16]}… it names"
        )
    return status.global_model


def _released_chain(
    node: AttestedNode,
    status: NodeStatus,
    known: tuple[SignedReceipt, ...],
    signed_rounds: SignedRounds,
    *,
    fetch: bool,
) -> tuple[SignedReceipt, ...]:
    """The node's released chain as `status` describes it, fetched only when this owner cannot name it already.

    Known without a call: the chain last seen, if the status names its head; or that chain plus the receipt this
    owner signed for the next round, if the status names that receipt as the new head. Any other head (a round
    this owner did not sign, a release of another receipt than the one it signed, a reconnection) is fetched and
    then checked by the caller like every chain (ConflictingReceipts, RollbackDetected).
    """
    if not fetch:
        head = status.released_head_sha256
        if len(known) == status.rounds_completed and hmac.compare_digest(known[-1].sha256 if known else b"", head):
            return known
        ours = signed_rounds.signed(len(known) + 1)
        if status.rounds_completed == len(known) + 1 and ours is not None and hmac.compare_digest(ours.sha256, head):
            return (*known, ours)
    return node.client.receipts()


def reconnect_to_node(
    reconnect: Reconnect,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> AttestedNode:
    """Connect and attest again until it works; ProtocolError after `give_up_after_seconds` of unreachability.

    Only an unreachable node is retried: a node that answers but fails attestation or refuses the join raises
    that precise error at once.
    """
    deadline = monotonic() + reconnect.give_up_after_seconds
    wait, attempt = reconnect.retry_seconds, 0
    while True:
        attempt += 1
        try:
            return reconnect.connect()
        except ProtocolError as exc:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise ProtocolError(
                    f"the node stayed unreachable for {reconnect.give_up_after_seconds:g} s ({attempt} attempts): {exc}"
                ) from None
            wait = min(wait, remaining)
            if reconnect.on_retry is not None:
                notice = RetryNotice(
                    attempt=attempt,
                    error=exc,
                    retry_in_seconds=wait,
                    gives_up_in_seconds=remaining,
                    give_up_after_seconds=reconnect.give_up_after_seconds,
                )
                reconnect.on_retry(notice)
            sleep(wait)
            wait = min(wait * 2, reconnect.max_retry_seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalModel:
    weights: ModelWeights
    receipts: tuple[RoundReceipt, ...]
    signed: tuple[SignedReceipt, ...] = ()  # the chain as the node sent it (signatures), for the receipts file


class ModelOwnerSession:
    """The model owner's control plane on an attested node: submit, status, watch, download (verified)."""

    def __init__(self, node: AttestedNode, *, job: JobSpec, tracker: ReceiptTracker | None = None) -> None:
        self.node = node
        self.job = job
        # pass a PersistentReceiptTracker to remember the chain across model-owner restarts (rollback detection)
        self.tracker = tracker or ReceiptTracker(job_digest=job.digest())

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        job: JobSpec,
        policy: AttestationPolicy,
        credentials: OwnerCredentials,
        clock: Clock | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        tracker: ReceiptTracker | None = None,
        collateral: CollateralSource | None = None,
    ) -> ModelOwnerSession:
        node = connect_and_attest(
            address,
            role=Role.MODEL_OWNER,
            name="",
            job=job,
            policy=policy,
            credentials=credentials,
            clock=clock,
            chunk_bytes=chunk_bytes,
            collateral=collateral,
        )
        return cls(node, job=job, tracker=tracker)

    def close(self) -> None:
        self.node.client.close()

    def submit_initial_model(self, weights: ModelWeights) -> str:
        return self.node.client.submit_initial_model(encode_weights(weights))

    def status(self) -> NodeStatus:
        return self.node.client.node_status()

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]:
        return self.node.client.watch(after_round=after_round)

    def receipts(self) -> tuple[RoundReceipt, ...]:
        """The node's receipt chain, verified and checked against what this session saw before (rollback)."""
        return self._verified(self.node.client.receipts())

    def _verified(self, chain: tuple[SignedReceipt, ...]) -> tuple[RoundReceipt, ...]:
        self.tracker.observe(chain, self.node.node_public_key_pem)
        return verify_receipt_chain(chain, self.node.node_public_key_pem, self.job.digest())

    def download_final(self) -> FinalModel:
        """The final model, accepted only if its hash is the one the last verified receipt names.

        The model is the last thing asked of the node: a node whose job ended may exit once it handed it out.
        """
        signed: tuple[SignedReceipt, ...] = self.node.client.receipts()
        receipts = self._verified(signed)
        if len(receipts) != self.job.rounds:
            raise ReceiptError(f"the chain has {len(receipts)} receipts, the job has {self.job.rounds} rounds")
        weights = decode_weights(self.node.client.final_model_bytes())
        if weights.sha256() != receipts[-1].global_model_sha256:
            raise ReceiptError("the final model's hash differs from the one the last receipt signs")
        return FinalModel(weights=weights, receipts=receipts, signed=signed)

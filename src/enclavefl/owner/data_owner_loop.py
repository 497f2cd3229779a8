"""A data owner's rounds against one node, until the job ends: the same loop in a deployment and a simulation.

    node = connect_data_owner("host:port", name="alice", job=job, policy=policy, credentials=creds)  # or in memory
    owner = DataOwner(name="alice", task=task, data=data, job=job)
    report = run_data_owner(owner, node)          # every round until the job ends; receipts verified each round

Rounds close in two phases (core/acknowledgement.py): when the node shows a round as "signing", the owner checks
its sealed receipt, records it durably and signs it back; the node releases the aggregate only once every
contributor did. An owner never uploads again for a round it signed (RoundAlreadySigned) and refuses a node
presenting another receipt for it (ConflictingReceipts, with both); owner/chain_view.py holds those checks.

A data owner that must survive node restarts passes `reconnect=Reconnect(...)` (owner/reconnect.py) and a chain
view over a PersistentReceiptTracker (owner/owner_state.py): when the node goes away, the owner connects again,
re-attests with a fresh nonce, and refuses a node whose chain does not extend the last one it verified.
This module does not import torch (the DataOwner it drives does).
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from enclavefl.core.codec import decode_weights
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipts import RoundReceipt
from enclavefl.errors import (
    CertificateMismatch,
    CodecError,
    NotEnrolled,
    ProtocolError,
    SessionReplaced,
    UnmaskAlreadyAnswered,
    UpdateRejected,
)
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.masked_remote import NodeMaskedRelay
from enclavefl.owner.reconnect import Reconnect, reconnect_to_node
from enclavefl.transport.api import JobState, NodeStatus

if TYPE_CHECKING:
    from enclavefl.owner.data_owner import DataOwner
    from enclavefl.owner.masked_owner import MaskedOwner

log = logging.getLogger(__name__)

# The longest one status long poll waits for the node to change; it answers at once when something happens.
STATUS_WAIT_SECONDS: Final = 2.0
# What a node that went away (crashed, restarted, now another process with another session table) looks like.
_NODE_GONE = (ProtocolError, CertificateMismatch, NotEnrolled)


@dataclass(slots=True, kw_only=True)
class DataOwnerReport:
    """What one data owner saw: rounds it contributed to, refusals, and the verified receipt chain head."""

    contributed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # rounds whose cohort the enclave drew without this owner
    refused: list[tuple[int, str]] = field(default_factory=list)  # (round, error class name)
    # rounds whose upload went out but whose answer was lost (the node went away meanwhile): whether it counted is
    # unknown, so the owner uploads again if the node it reconnects to asks for the round
    interrupted: list[int] = field(default_factory=list)
    final_state: JobState = JobState.RUNNING
    final_message: str = ""
    receipt_head: RoundReceipt | None = None
    reconnects: int = 0


@dataclass(slots=True, kw_only=True)
class OwnerLoopState:
    """Where one data owner's loop stands against its current connection (the receipt chain is its view's)."""

    node: AttestedNode
    answered_rounds: set[tuple[int, int]] = field(default_factory=set)  # (round, attempt) already uploaded for
    fresh: bool = False  # just reconnected: check the chain before anything else
    # the status last seen with nothing to do: the next status call waits for it to change
    idle: NodeStatus | None = None
    # the status the node answered an upload or a signature with: act on it without asking again
    answered: NodeStatus | None = None

    def reconnected(self, node: AttestedNode) -> None:
        """A restarted node redoes its open round from its checkpoint, or asks again for its sealed round's
        signatures: upload again, sign the same receipt again, and check its chain first."""
        self.node, self.fresh, self.idle, self.answered = node, True, None, None
        self.answered_rounds.clear()


def run_data_owner(
    owner: DataOwner,
    node: AttestedNode,
    *,
    wait_seconds: float = STATUS_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    reconnect: Reconnect | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> DataOwnerReport:
    """Contribute to every round the node opens until the job ends; verify the receipt chain after each round.

    Nothing waits on a timer: when there is nothing to do the owner asks the node for its status with the last one
    it saw (a long poll, at most `wait_seconds`), and the node answers as soon as a round opens, seals or is
    released, or the job ends. `sleep(0)` runs once per status: the caller's cancellation point.
    """
    owner.use(node)
    state = OwnerLoopState(node=node)
    report = DataOwnerReport()
    masked: MaskedOwner | None = None
    if owner.job.masked:  # imported here: masked_owner needs torch, which this module leaves to the owner object
        from enclavefl.owner.masked_owner import MaskedOwner

        masked = MaskedOwner(owner=owner, relay=NodeMaskedRelay(node.client, timeout=1.0))
    while True:
        try:
            status = _next_status(state, wait_seconds)
            owner.chain.note_cohort(status)  # CohortMismatch: the node told another story about this round
            sleep(0)  # no wait: the caller's sleep hook is also its cancellation point (DataOwnerClient.cancel)
            if _follow_chain(owner, state, status, report):
                continue  # signed: act on the node's answer (released by now, most likely) without asking again
        except _NODE_GONE as exc:
            if reconnect is None or isinstance(exc, SessionReplaced):  # another process holds our key: not a restart
                raise
            _reconnect(owner, state, report, reconnect, exc, sleep=sleep, monotonic=monotonic)
            continue
        if status.job_state in (JobState.FINISHED, JobState.FAILED):
            report.final_state, report.final_message = status.job_state, status.job_message
            return report
        key = (status.round, status.attempt)
        if status.phase is RoundPhase.OPEN and key not in state.answered_rounds:
            state.answered_rounds.add(key)
            if status.outside_cohort:  # the enclave drew others for this round: wait for the next one
                if status.round not in report.skipped:
                    report.skipped.append(status.round)
                    log.info("%s: round %d: not in the cohort drawn for it; waiting", owner.name, status.round)
                    if owner.report is not None:
                        owner.report(f"[{owner.name}] round {status.round}: the enclave drew other owners; waiting")
                state.idle = status
                continue
            _contribute(owner, state, status, report, masked, wait_seconds, reconnecting=reconnect is not None)
            continue
        state.idle = status


def _next_status(state: OwnerLoopState, wait_seconds: float) -> NodeStatus:
    if state.answered is not None:
        status, state.answered = state.answered, None
        return status
    status = state.node.client.node_status(seen=state.idle, wait_seconds=wait_seconds)
    state.idle = None
    return status


def _follow_chain(owner: DataOwner, state: OwnerLoopState, status: NodeStatus, report: DataOwnerReport) -> bool:
    """Check the chain the status shows and sign a sealed round's receipt; True when a signature went out."""
    view = owner.chain
    if not (state.fresh or view.needs_sync(status)):
        return False
    to_sign = view.sync(status, state.node, fetch=state.fresh)
    state.fresh = False
    report.receipt_head = view.head
    if to_sign is None:
        return False
    try:  # records (durably) and signs; the node answers once the round is released
        state.answered = state.node.client.acknowledge_for_status(owner.sign_receipt(to_sign))
    except UpdateRejected as exc:  # e.g. the node moved on meanwhile: look again, sign again if asked
        log.warning(
            "%s: signature for round %d refused: %s: %s", owner.name, to_sign.receipt.round, type(exc).__name__, exc
        )
        return False
    view.signed_here(to_sign.receipt.round)
    return True


def _contribute(
    owner: DataOwner,
    state: OwnerLoopState,
    status: NodeStatus,
    report: DataOwnerReport,
    masked: MaskedOwner | None,
    wait_seconds: float,
    *,
    reconnecting: bool,
) -> None:
    """Train and upload for the open round (masked mode: its four steps); the node answers at the seal."""
    try:
        if masked is not None:  # masked mode: keys, shares, masked upload, unmask answer
            masked.relay = NodeMaskedRelay(state.node.client, timeout=owner.job.round_deadline_seconds)
            masked.run_round(status.round)
        else:  # RoundAlreadySigned (not caught) if this owner signed the round; the node answers the upload
            state.answered = owner.run_round(  # once the round is sealed (or after wait_seconds)
                status.round,
                global_model=carried_model(status),
                send=functools.partial(state.node.client.upload_for_status, wait_seconds=wait_seconds),
            )
        report.contributed.append(status.round)
        state.idle = status  # uploaded: wait for the round to seal (other contributions do not wake us)
    except UpdateRejected as exc:  # the node refused it; the round goes on without us
        log.warning("%s: round %d update refused: %s: %s", owner.name, status.round, type(exc).__name__, exc)
        if owner.report is not None:  # at once, to this owner: its update is why the round may be lost
            owner.report(describe_refusal_of_update(owner.name, status.round, exc, k=owner.job.min_contributions))
        report.refused.append((status.round, type(exc).__name__))
        state.idle = status
    except UnmaskAlreadyAnswered as exc:  # masked mode: this owner answered the round's unmasking once already
        log.warning("%s: round %d: %s", owner.name, status.round, exc)
        report.refused.append((status.round, type(exc).__name__))
        state.idle = status
    except (ProtocolError, CertificateMismatch) as exc:
        if not reconnecting:
            raise
        # the next status call finds out whether the node is gone (and reconnects) or only the call failed
        log.warning("%s: round %d upload failed: %s: %s", owner.name, status.round, type(exc).__name__, exc)
        report.interrupted.append(status.round)
        state.answered_rounds.discard((status.round, status.attempt))


def describe_refusal_of_update(name: str, round_index: int, exc: UpdateRejected, *, k: int) -> str:
    """One line for the owner whose update was refused: what the node said, and what it means for the round."""
    hint = (
        " (your local training produced NaN or inf: check your data, its scaling and the learning rate)"
        if "finite" in str(exc)
        else ""
    )
    return (
        f"[{name}] round {round_index}: the node refused your update: {type(exc).__name__}: {exc}{hint}; the round "
        f"goes on without it and is lost if fewer than {k} updates arrive"
    )


def _reconnect(
    owner: DataOwner,
    state: OwnerLoopState,
    report: DataOwnerReport,
    reconnect: Reconnect,
    exc: Exception,
    *,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
) -> None:
    log.info("%s: the node went away (%s: %s); reconnecting", owner.name, type(exc).__name__, exc)
    if owner.report is not None:
        owner.report(
            f"[{owner.name}] the node went away ({type(exc).__name__}); reconnecting and attesting it again for up "
            f"to {reconnect.give_up_after_seconds:g} s"
        )
    state.node.client.close()
    node = reconnect_to_node(reconnect, sleep=sleep, monotonic=monotonic)
    owner.use(node)
    owner.chain.new_connection()
    state.reconnected(node)
    report.reconnects += 1


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

"""Many virtual data owners driven from one loop: their training elsewhere (Ray), their protocol here, streamed.

    report = drive_virtual_owners(node, attested, job=job, names=names, trainer=trainer)

The node is the deployment's AggregatorNode behind the in-memory transport; each virtual owner speaks to it under
its own name (InMemoryClient(node, caller=name)) with the calls a data owner makes: it uploads its update under a
fresh commitment salt, and, once the round is sealed, the receipt is checked (signature under the attested key,
extends the verified chain, lists every accepted update of ours: ReceiptError/UpdateOmitted otherwise) and each
contributor signs it. With cohorts (job.clients_per_round), each owner's own status says whether the enclave drew
it for the round: only members train, and the receipt's cohort commitment must list exactly the members
(check_cohort_claim, CohortMismatch otherwise). One loop instead of one thread per owner: the driver holds one
chain view for all of them (they share this process, so they share its verification) and one update at a time,
whatever the number of owners; `trainer` yields the round's updates in cohort order (reproducible folds: the node
sums in arrival order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import check_cohort_claim, check_update_included
from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.update_message import UpdateMessage, new_commitment_salt
from enclavefl.enclave.node import AggregatorNode
from enclavefl.errors import UpdateRejected
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.data_owner_loop import STATUS_WAIT_SECONDS, carried_model
from enclavefl.sim.virtual_training import TrainedUpdate
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.inmemory import InMemoryClient

log = logging.getLogger(__name__)

Progress = Callable[["RoundProgress"], None]


class Trainer(Protocol):
    """Where the owners train (sim/ray_trainer.py: Ray tasks): the round's updates, in the order `owners` lists."""

    def stream(self, round_index: int, owners: Sequence[int], global_model: bytes) -> Iterator[TrainedUpdate]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundProgress:
    """One round's attempt as the virtual owners saw it: who trained, how many the node took, how long it took."""

    round: int
    attempt: int
    trained: int
    accepted: int
    refused: int
    seconds: float
    members: tuple[int, ...]  # the owners (indices) who trained: the enclave's cohort, or everyone
    train_loss: float  # the example-weighted mean local loss of the accepted updates


@dataclass(slots=True, kw_only=True)
class VirtualOwnersReport:
    """What the virtual owners did over the job (counts only: nothing per owner is kept)."""

    uploads: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # error class name -> count
    rounds_signed: int = 0
    final_state: JobState = JobState.RUNNING
    final_message: str = ""


def drive_virtual_owners(
    node: AggregatorNode,
    attested: AttestedNode,
    *,
    job: JobSpec,
    names: Sequence[str],
    trainer: Trainer,
    salts: Mapping[str, Callable[[], bytes]] | None = None,
    on_progress: Progress | None = None,
    wait_seconds: float = STATUS_WAIT_SECONDS,
) -> VirtualOwnersReport:
    """Take part in every round the node opens until the job ends; `attested` verified the node for all owners.

    `attested.client` is one virtual owner's connection, used to follow the node (status, sealed receipts).
    """
    view = ReceiptChainView(job_digest=job.digest())
    view.cohort_size = job.cohort_size
    report = VirtualOwnersReport()
    answered: set[tuple[int, int]] = set()
    rounds: dict[int, _Round] = {}  # the open round's (and a sealed one's) cohort and accepted uploads
    seen: NodeStatus | None = None
    while True:
        status = attested.client.node_status(seen=seen, wait_seconds=wait_seconds)
        seen = None
        current = rounds.get(status.round)
        if current is None and status.phase in (RoundPhase.OPEN, RoundPhase.SIGNING):
            rounds.clear()  # only the round in hand is kept: memory does not grow with the rounds
            current = rounds[status.round] = _Round.drawn(
                node, status, names, view, cohorts=job.cohort_size is not None
            )
        if view.needs_sync(status) and _sign(node, attested, view, status, current, names, report):
            continue
        if status.job_state in (JobState.FINISHED, JobState.FAILED):
            report.final_state, report.final_message = status.job_state, status.job_message
            return report
        key = (status.round, status.attempt)
        if status.phase is RoundPhase.OPEN and current is not None and key not in answered:
            answered.add(key)
            current.accepted.clear()  # a re-opened round: the earlier attempt's uploads no longer count
            progress = _contribute(node, attested, status, names, trainer, current, salts, report)
            if on_progress is not None:
                on_progress(progress)
        seen = status


@dataclass(slots=True, kw_only=True)
class _Round:
    """One round as the virtual owners know it: its members (indices, in name order), each owner's cohort token,
    and the uploads the node accepted (owner -> commitment)."""

    round: int
    members: tuple[int, ...]
    tokens: dict[int, bytes] = field(default_factory=dict)  # empty for a job without cohorts
    accepted: dict[str, bytes] = field(default_factory=dict)

    @staticmethod
    def drawn(
        node: AggregatorNode, status: NodeStatus, names: Sequence[str], view: ReceiptChainView, *, cohorts: bool
    ) -> _Round:
        """Everyone, or (cohorts) the members each owner's own status names; the view keeps a member's claim."""
        if not cohorts:
            return _Round(round=status.round, members=tuple(range(len(names))))
        tokens: dict[int, bytes] = {}
        members: list[int] = []
        for index, name in enumerate(names):  # each owner's own status: the node tells nobody another's place
            own = node.node_status(data_owner=True, caller=name)
            if own.round != status.round:
                break  # the node moved on meanwhile: the next status is acted on instead
            tokens[index] = own.cohort_token
            if not own.outside_cohort:
                if not members:
                    view.note_cohort(own)  # the shared view follows the round as a member sees it
                members.append(index)
        return _Round(round=status.round, members=tuple(members), tokens=tokens)


def _contribute(
    node: AggregatorNode,
    attested: AttestedNode,
    status: NodeStatus,
    names: Sequence[str],
    trainer: Trainer,
    current: _Round,
    salts: Mapping[str, Callable[[], bytes]] | None,
    report: VirtualOwnersReport,
) -> RoundProgress:
    """Train the cohort (elsewhere) and upload each update as it comes back, in cohort order."""
    started = time.monotonic()
    round_index = status.round
    global_model = carried_model(status) or bytes(attested.client.global_model_bytes(round_index))
    trained = refused = 0
    loss_sum, examples = 0.0, 0
    for update in trainer.stream(round_index, current.members, global_model):
        trained += 1
        name = names[update.index]
        message = UpdateMessage.of(
            owner=name,
            round=round_index,
            num_examples=update.num_examples,
            payload=update.payload,
            metrics={"train_loss": update.train_loss},
            salts=(salts or {}).get(name, new_commitment_salt),
        )
        del update  # the driver holds one update at a time
        try:
            InMemoryClient(node, caller=name).upload_update(message)
        except UpdateRejected as exc:  # the node refused it; the round goes on without this owner
            log.warning("%s: round %d update refused: %s: %s", name, round_index, type(exc).__name__, exc)
            report.refused[type(exc).__name__] = report.refused.get(type(exc).__name__, 0) + 1
            refused += 1
            continue
        current.accepted[name] = message.header.commitment
        report.uploads += 1
        loss_sum += message.header.metrics["train_loss"] * message.header.num_examples
        examples += message.header.num_examples
    return RoundProgress(
        round=round_index,
        attempt=status.attempt,
        trained=trained,
        accepted=len(current.accepted),
        refused=refused,
        seconds=time.monotonic() - started,
        members=current.members,
        train_loss=loss_sum / examples if examples else float("nan"),
    )


def _sign(
    node: AggregatorNode,
    attested: AttestedNode,
    view: ReceiptChainView,
    status: NodeStatus,
    current: _Round | None,
    names: Sequence[str],
    report: VirtualOwnersReport,
) -> bool:
    """Check the chain `status` shows; a sealed round's receipt is checked for every owner, then its contributors
    sign it, then other eligible owners (the cohort's members, or any enrolled owner) until the node releases it.
    True when signatures went out."""
    to_sign = view.sync(status, attested, fetch=False)
    if to_sign is None or current is None or current.round != to_sign.receipt.round:
        return False
    receipt = view.record_for_signing(to_sign, attested.node_public_key_pem)  # ReceiptError: nobody signs
    _check_for_everyone(receipt, current, view)
    eligible = [names[i] for i in current.members]
    signers = [*current.accepted, *(name for name in eligible if name not in current.accepted)]
    for name in signers:  # keyless virtual owners, trusted in process (as simulate()'s owners are)
        ack = Acknowledgement(owner=name, round=receipt.round, receipt_sha256=to_sign.sha256, signature=b"")
        try:
            answer = node.acknowledge(ack)
        except UpdateRejected as exc:  # e.g. released meanwhile: the next status shows where the node is
            log.warning("%s: signature for round %d refused: %s: %s", name, receipt.round, type(exc).__name__, exc)
            continue
        if answer.rounds_completed >= receipt.round:
            break  # released: no more signatures are needed
    view.signed_here(receipt.round)
    report.rounds_signed += 1
    return True


def _check_for_everyone(receipt: RoundReceipt, current: _Round, view: ReceiptChainView) -> None:
    """What each owner would check before signing: its accepted update is listed (UpdateOmitted), and with cohorts
    the receipt lists it exactly when it was told it is a member (CohortMismatch)."""
    for commitment in current.accepted.values():
        check_update_included(receipt, commitment)
    if view.cohort_size is None:
        return
    members = set(current.members)
    for index, token in current.tokens.items():
        check_cohort_claim(
            receipt.cohort,
            job_digest=view.job_digest,
            round_index=receipt.round,
            size=view.cohort_size,
            token=token,
            member=index in members,
        )

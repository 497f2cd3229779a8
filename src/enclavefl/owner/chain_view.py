"""A data owner's view of one job's receipt chain, in one place: what it verified, signed and contributed.

    view = ReceiptChainView(job_digest=job.digest(), tracker=PersistentReceiptTracker.open(state, job_digest=d))
    to_sign = view.sync(status, node, fetch=False)    # the node's chain checked against all this owner knows
    receipt = view.record_for_signing(to_sign, key_pem)   # durably recorded: only then may the owner sign it

The checks, each refusing the node with a precise error: the released chain verifies and extends what this owner
verified before (RollbackDetected otherwise, from the tracker); at every round this owner signed, the node shows
the receipt it signed (ConflictingReceipts with both); a node whose state lies before the last round this owner
signed is refused (RoundAlreadySigned); each receipt lists this owner's accepted update (UpdateOmitted); with
cohorts, each receipt's cohort commitment lists this owner exactly when the node told it it is a member, and the
node never tells it two different things about one round (CohortMismatch); an owner outside the cohort signs nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipt_checks import (
    ReceiptTracker,
    SignedRounds,
    check_cohort_claim,
    check_same_round,
    check_update_included,
    verify_receipt,
)
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, SignedReceipt
from enclavefl.errors import CohortMismatch, ReceiptError
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.owner_state import CohortClaims, PersistentReceiptTracker
from enclavefl.transport.api import NodeStatus


class ReceiptChainView:
    """One owner's memory of one job's chain; pass a PersistentReceiptTracker to keep it across restarts."""

    def __init__(self, *, job_digest: bytes, tracker: ReceiptTracker | None = None) -> None:
        self.job_digest = job_digest
        self.tracker = tracker or ReceiptTracker(job_digest=job_digest)
        # the receipt signed per round; a PersistentReceiptTracker's survives the owner's restarts
        self.signed_rounds = (
            self.tracker.signed_rounds if isinstance(self.tracker, PersistentReceiptTracker) else SignedRounds()
        )
        # round -> commitment of the upload the node accepted (what the round's receipt must list), and the secret
        # salt that opens it: with it and the payload, this owner can prove the inclusion to anyone.
        self.accepted_updates: dict[int, bytes] = {}
        self.commitment_salts: dict[int, bytes] = {}
        self.known: tuple[SignedReceipt, ...] = ()  # the node's released chain as last known on this connection
        self.head: RoundReceipt | None = None  # the head of the last chain verified
        self._signed_here: set[int] = set()  # rounds whose receipt this owner signed on the current connection
        # Cohorts: owners per round (the job's; None: no cohort), and per round what the node told this owner:
        # (member, token). Kept across connections, and beside a PersistentReceiptTracker's file across restarts
        # of the owner: a node that tells another story about a round is refused.
        self.cohort_size: int | None = None
        self.cohort_claims = CohortClaims.beside(self.tracker, job_digest=job_digest)

    # --- uploads ---------------------------------------------------------------------------------
    def check_may_upload(self, round_index: int) -> None:
        """RoundAlreadySigned if this owner signed `round_index`: a node asking again replaced that round."""
        self.signed_rounds.check_may_upload(round_index)

    def forget_upload(self, round_index: int) -> None:
        """An earlier attempt of this round no longer counts."""
        self.accepted_updates.pop(round_index, None)
        self.commitment_salts.pop(round_index, None)

    def record_upload(self, round_index: int, *, commitment: bytes, salt: bytes) -> None:
        """The node accepted this owner's upload for `round_index`: its receipt must list `commitment`."""
        self.accepted_updates[round_index] = commitment
        self.commitment_salts[round_index] = salt

    # --- following the node ------------------------------------------------------------------------
    def new_connection(self) -> None:
        """A reconnection: the node may have restarted and ask for the same signatures again."""
        self._signed_here.clear()

    def needs_sync(self, status: NodeStatus) -> bool:
        """Whether `status` shows anything the chain view must check (a receipt to sign, a release, a rollback)."""
        released = self.head.round if self.head is not None else 0
        pending = status.pending if status.phase is RoundPhase.SIGNING else None
        stale = status.phase is RoundPhase.SIGNING and pending is None
        behind_or_ahead = status.rounds_completed != self.tracker.head_round or status.rounds_completed != released
        return stale or pending is not None or behind_or_ahead

    def note_cohort(self, status: NodeStatus) -> None:
        """Remember this owner's cohort claim for the status's round; CohortMismatch if it changed (a redraw)."""
        if self.cohort_size is None or status.phase not in (RoundPhase.OPEN, RoundPhase.SIGNING):
            return
        self.cohort_claims.note(status.round, member=not status.outside_cohort, token=status.cohort_token)

    def check_cohort(self, receipt: RoundReceipt) -> bool:
        """Whether this owner is in the receipt's cohort (True for a job without cohorts); CohortMismatch unless
        the receipt's commitment agrees with what the node told this owner about the round and with the job."""
        if self.cohort_size is None:
            if receipt.cohort is not None:
                raise CohortMismatch(f"round {receipt.round}: the receipt commits to a cohort, the job draws none")
            return True
        member, token = self.cohort_claims.get(receipt.round)
        check_cohort_claim(
            receipt.cohort,
            job_digest=self.job_digest,
            round_index=receipt.round,
            size=self.cohort_size,
            token=token,
            member=member,
        )
        return member

    def sync(self, status: NodeStatus, node: AttestedNode, *, fetch: bool) -> SignedReceipt | None:
        """Check the chain `status` describes (fetched if `fetch` or if this owner cannot name it); the pending
        receipt this owner has yet to sign on this connection, if any."""
        key_pem = node.node_public_key_pem
        pending = status.pending if status.phase is RoundPhase.SIGNING else None
        # "Signing" with no receipt: the round was released while the node answered, so the status (and its
        # rounds_completed) is stale. The chain is fetched, not reused: the stale count would hide the round
        # this owner just signed and accuse an honest node of dropping it (RoundAlreadySigned).
        stale = status.phase is RoundPhase.SIGNING and pending is None
        chain = self._released_chain(status, node, fetch=fetch or stale)
        self.known = chain
        pending = self._unless_released(pending, chain, key_pem)
        self.signed_rounds.check_node_holds_signed_round(len(chain), pending)  # RoundAlreadySigned
        extends = pending is not None and pending.receipt.round == len(chain) + 1
        presented = (*chain, pending) if pending is not None and extends else chain
        self.signed_rounds.check_chain(presented, key_pem)  # ConflictingReceipts
        to_sign = pending if pending is not None and pending.receipt.round not in self._signed_here else None
        if to_sign is not None and not self.check_cohort(to_sign.receipt):
            to_sign = None  # outside the round's cohort: its signature does not count, so it signs nothing
        if isinstance(self.tracker, PersistentReceiptTracker):  # the signature's record writes it in one go
            self.tracker.observe(presented, key_pem, defer_save=to_sign is not None)
        else:
            self.tracker.observe(presented, key_pem)  # RollbackDetected
        self.head = chain[-1].receipt if chain else None
        if self.head is not None and self.head.round in self.accepted_updates:
            check_update_included(self.head, self.accepted_updates[self.head.round])
        if self.head is not None and self.head.round in self.cohort_claims:
            self.check_cohort(self.head)  # also a round this owner sat out: the receipt must not list it
        return to_sign

    def record_for_signing(
        self, pending: SignedReceipt, key_pem: bytes, *, chain: Sequence[SignedReceipt] | None = None
    ) -> RoundReceipt:
        """Second phase of a round: check the sealed round's receipt against `chain` (default: the chain last
        synced), then record it durably. Only then may the owner sign it; it never uploads for that round again."""
        chain = self.known if chain is None else chain
        receipt = verify_receipt(pending, key_pem)
        previous = chain[-1].sha256 if chain else GENESIS_SHA256
        extends = receipt.round == len(chain) + 1 and hmac.compare_digest(receipt.previous_sha256, previous)
        if receipt.job_digest != self.job_digest or not extends:
            raise ReceiptError(
                f"the pending receipt of round {receipt.round} does not extend the node's chain of {len(chain)} "
                "round(s) for this job: refusing to sign it"
            )
        if receipt.round in self.accepted_updates:
            check_update_included(receipt, self.accepted_updates[receipt.round])
        if not self.check_cohort(receipt):
            raise CohortMismatch(f"round {receipt.round}: this owner is outside the cohort and signs nothing for it")
        self.signed_rounds.record(pending, key_pem)  # durable before the signature leaves
        return receipt

    def signed_here(self, round_index: int) -> None:
        """The node took this owner's signature for `round_index` on the current connection."""
        self._signed_here.add(round_index)

    def _released_chain(self, status: NodeStatus, node: AttestedNode, *, fetch: bool) -> tuple[SignedReceipt, ...]:
        """The node's released chain as `status` describes it, fetched only when this owner cannot name it already.

        Known without a call: the chain last seen, if the status names its head; or that chain plus the receipt
        this owner signed for the next round, if the status names that receipt as the new head. Any other head (a
        round this owner did not sign, a release of another receipt than the one it signed, a reconnection) is
        fetched and then checked like every chain (ConflictingReceipts, RollbackDetected).
        """
        known = self.known
        if not fetch:
            head = status.released_head_sha256
            if len(known) == status.rounds_completed and hmac.compare_digest(known[-1].sha256 if known else b"", head):
                return known
            ours = self.signed_rounds.signed(len(known) + 1)
            if (
                status.rounds_completed == len(known) + 1
                and ours is not None
                and hmac.compare_digest(ours.sha256, head)
            ):
                return (*known, ours)
        return node.client.receipts()

    @staticmethod
    def _unless_released(
        pending: SignedReceipt | None, chain: Sequence[SignedReceipt], key_pem: bytes
    ) -> SignedReceipt | None:
        """`pending`, or None if `chain` (fetched after it) already released its round: the release happened
        between the two calls, and the released receipt must be the one that was pending (ConflictingReceipts)."""
        if pending is None or pending.receipt.round > len(chain):
            return pending
        check_same_round(chain[pending.receipt.round - 1], pending, key_pem)
        return None

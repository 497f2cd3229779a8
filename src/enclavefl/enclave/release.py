"""A sealed round waiting for its signatures: nothing of it leaves the enclave until they are all in.

    pending = PendingRound(receipt=signed, model_bytes=..., summary=..., contributors={"a", "b"}, enrolled=3)
    pending.acknowledge(ack, public_key)     # AcknowledgementRefused unless it signs exactly this receipt
    pending.check_releasable()                # ReleaseWithheld while a contributor or the majority is missing
    class SecureWorker(ReleasePhase): ...      # the worker's second phase: acknowledge, release_round

Why: a released aggregate that contains an owner's round-r update must exist only after that owner durably
recorded round r's receipt, which it then never replaces (core/acknowledgement.py). Requiring also a majority of
the enrolled owners makes any two signer sets intersect, so two different receipts for one round cannot both be
released even by two copies of the enclave started from the same sealed state. With cohorts, `enrolled` is the
round's cohort: only its members sign, and a majority of it suffices (every copy of the enclave draws the same
cohort for a round, so two such majorities intersect too: enclave/cohort.py).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import Acknowledgement, release_quorum, verify_acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import NodeCheckpoint
from enclavefl.enclave.global_model import GlobalModel
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.errors import (
    AcknowledgementRefused,
    NotEnrolled,
    NotInCohort,
    ReleaseWithheld,
    RoundStateError,
    UpdateRejected,
    WrongRound,
)

log = logging.getLogger(__name__)

AcknowledgementSink = Callable[[SignedReceipt, tuple[Acknowledgement, ...]], object]


@dataclass(slots=True, kw_only=True)
class PendingRound:
    """The state of one sealed, unreleased round and the signatures collected for it."""

    receipt: SignedReceipt
    model: ModelWeights
    model_bytes: ModelBytes
    summary: RoundSummary
    contributors: frozenset[str]
    # who signs: the enrolled owners, or the round's cohort; empty: a job without enrolment (in-process only), then
    # contributors suffice
    enrolled: frozenset[str]
    checkpoint: NodeCheckpoint  # what was sealed; a restart finds exactly this
    stored: StoredModel | None = None  # the model inside that sealed checkpoint: downloads read it from there
    acks: dict[str, Acknowledgement] = field(default_factory=dict)

    @classmethod
    def resumed(
        cls,
        receipt: SignedReceipt,
        checkpoint: NodeCheckpoint,
        *,
        model: ModelWeights,
        model_bytes: ModelBytes,
        enrolled: frozenset[str],
    ) -> PendingRound:
        """The sealed round a checkpoint carries (`checkpoint.pending`), waiting for the same signatures again."""
        sealed = checkpoint.pending
        if sealed is None:
            raise ValueError("the checkpoint carries no sealed round")
        summary = RoundSummary(
            round=receipt.receipt.round,
            contributions=receipt.receipt.contributions,
            global_model_sha256=receipt.receipt.global_model_sha256.hex(),
            metrics=dict(sealed.metrics),
            rejected=dict(sealed.rejected),
            evaluation=dict(sealed.evaluation),
        )
        return cls(
            receipt=receipt,
            model=model,
            model_bytes=model_bytes,
            summary=summary,
            contributors=frozenset(sealed.contributors),
            enrolled=enrolled,
            checkpoint=checkpoint,
        )

    @property
    def round(self) -> int:
        return self.receipt.receipt.round

    def acknowledge(self, ack: Acknowledgement, public_key: ec.EllipticCurvePublicKey | None) -> None:
        """Count `ack` if it is an enrolled owner's signature over exactly this receipt; idempotent."""
        if self.enrolled and ack.owner not in self.enrolled:
            if self.receipt.receipt.cohort is not None:
                raise NotInCohort(f"{ack.owner!r} is not in round {self.round}'s cohort: its signature does not count")
            raise NotEnrolled(f"{ack.owner!r} is not enrolled: its signature does not count")
        if not self.enrolled and ack.owner not in self.contributors:
            raise AcknowledgementRefused(f"{ack.owner!r} did not contribute to round {self.round}")
        verify_acknowledgement(public_key, ack, receipt=self.receipt)
        self.acks[ack.owner] = ack

    def missing(self) -> int:
        """Signatures still needed: every contributor's, and enough others for a majority of the enrolled."""
        unsigned = len(self.contributors - self.acks.keys())
        short_of_majority = release_quorum(len(self.enrolled)) - len(self.acks) - unsigned
        return unsigned + max(0, short_of_majority)

    def check_releasable(self) -> None:
        unsigned = sorted(self.contributors - self.acks.keys())
        if unsigned or self.missing():
            raise ReleaseWithheld(
                f"round {self.round} is sealed but {len(unsigned)} contributor(s) and "
                f"{self.missing() - len(unsigned)} more owner(s) have not signed its receipt: nothing is released"
            )


class ReleasePhase:
    """The worker's second phase (SecureWorker inherits it): the owners' signatures over the sealed round's
    receipt, then its release. The state is the worker's, declared here and guarded by its lock."""

    _lock: threading.Lock
    _pending: PendingRound | None
    _receipts: list[SignedReceipt]
    _owner_keys: dict[str, ec.EllipticCurvePublicKey]
    _acknowledgement_sink: AcknowledgementSink | None
    _global: GlobalModel
    _global_sha256_hex: str
    _round: int  # rounds released so far
    _attempt: int
    _round_rejections: Counter[str]
    _excluded: set[str]

    def pending_receipt(self) -> SignedReceipt:
        """The sealed round's receipt, for the owners to record and sign (RoundStateError when none waits)."""
        with self._lock:
            if self._pending is None:
                raise RoundStateError("no sealed round waits for signatures")
            return self._pending.receipt

    def acknowledge(self, ack: Acknowledgement) -> None:
        """Count an owner's signature over the sealed round's receipt; a repeat of a released one is a no-op."""
        with self._lock:
            pending = self._pending
            if pending is None:
                last = self._receipts[-1] if self._receipts else None
                if last is not None and ack.round == last.receipt.round and ack.receipt_sha256 == last.sha256:
                    return  # the round was released meanwhile (every signature was in): nothing to count
                raise AcknowledgementRefused(f"{ack.owner!r} signed round {ack.round}: no sealed round waits")
            pending.acknowledge(ack, self._owner_keys.get(ack.owner))

    def restore_acknowledgements(self, acks: Iterable[Acknowledgement]) -> int:
        """How many of the signatures the host kept from before a restart verify under an enrolled key (and count);
        anything else in the host's file is ignored: the owners are asked again."""
        counted = 0
        for ack in acks:
            if ack.owner not in self._owner_keys:
                continue  # a keyless owner's acknowledgement is trusted only from the owner object in process
            try:
                self.acknowledge(ack)
                counted += 1
            except UpdateRejected as exc:
                log.warning("a kept signature of %r does not count: %s", ack.owner, exc)
        return counted

    def signatures_missing(self) -> int:
        """How many owners' signatures the sealed round still needs (0: releasable, or nothing pending)."""
        with self._lock:
            return self._pending.missing() if self._pending is not None else 0

    def release_round(self) -> RoundSummary:
        """Make the sealed round's aggregate, receipt and summary visible; ReleaseWithheld while unsigned."""
        with self._lock:
            pending = self._pending
            if pending is None:
                raise RoundStateError("no sealed round to release")
            pending.check_releasable()
            if self._acknowledgement_sink is not None:
                self._acknowledgement_sink(pending.receipt, tuple(pending.acks.values()))
            self._global_sha256_hex = pending.summary.global_model_sha256
            self._global = GlobalModel(pending.model_bytes, pending.model, self._global_sha256_hex)
            self._global.stored = pending.stored
            self._round = pending.round
            self._attempt = 0
            self._receipts.append(pending.receipt)
            self._pending = None
            self._round_rejections, self._excluded = Counter(), set()
            log.info("round %d released (%d signature(s))", self._round, len(pending.acks))
            return pending.summary

    def _refuse_while_pending(self) -> None:
        if self._pending is not None:
            raise WrongRound(f"round {self._pending.round} is sealed and waits for its contributors' signatures")

"""A sealed round waiting for its signatures: nothing of it leaves the enclave until they are all in.

    pending = PendingRound(receipt=signed, model_bytes=..., summary=..., contributors={"a", "b"}, enrolled=3)
    pending.acknowledge(ack, public_key)     # AcknowledgementRefused unless it signs exactly this receipt
    pending.check_releasable()                # ReleaseWithheld while a contributor or the majority is missing

Why: a released aggregate that contains an owner's round-r update must exist only after that owner durably
recorded round r's receipt, which it then never replaces (core/acknowledgement.py). Requiring also a majority of
the enrolled owners makes any two signer sets intersect, so two different receipts for one round cannot both be
released even by two copies of the enclave started from the same sealed state. With cohorts, `enrolled` is the
round's cohort: only its members sign, and a majority of it suffices (every copy of the enclave draws the same
cohort for a round, so two such majorities intersect too: enclave/cohort.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import Acknowledgement, release_quorum, verify_acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import NodeCheckpoint
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.errors import AcknowledgementRefused, NotEnrolled, NotInCohort, ReleaseWithheld


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

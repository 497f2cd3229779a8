"""A worker resumed from a sealed checkpoint: its receipts, its strategy's state and a round still to sign.

    resumed = resume_state(checkpoint, strategy, global_model, cohorts, enrolled)
    resumed.receipts, resumed.rounds_completed, resumed.pending   # SecureWorker.from_checkpoint applies them

A checkpoint written while its round waited for signatures (`pending`) resumes as that same sealed round: the
restarted node asks for the same signatures again and releases exactly this aggregate, never a re-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from enclavefl.aggregation import AggregationStrategy
from enclavefl.core.receipts import SignedReceipt
from enclavefl.enclave.checkpoint import NodeCheckpoint
from enclavefl.enclave.global_model import GlobalModel
from enclavefl.enclave.release import PendingRound
from enclavefl.enclave.strategy_state import restore_strategy_state
from enclavefl.errors import RoundStateError

if TYPE_CHECKING:
    from enclavefl.enclave.cohort import RoundCohorts


@dataclass(frozen=True)
class ResumedRounds:
    """What a checkpoint says of the rounds: the released receipts, their count and a sealed round to sign."""

    receipts: list[SignedReceipt]
    rounds_completed: int
    pending: PendingRound | None
    global_model_sha256_hex: str  # the last released model's, or the sealed round's aggregate's when one waits


def resume_state(
    checkpoint: NodeCheckpoint,
    strategy: AggregationStrategy,
    model: GlobalModel,
    cohorts: RoundCohorts | None,
    enrolled: frozenset[str],
) -> ResumedRounds:
    """Restore `strategy`'s state from `checkpoint` and read its rounds; `model` is the worker's, from the checkpoint.

    A sealed round is signed again by its cohort (`cohorts`' draw), or by every `enrolled` owner without cohorts.
    """
    restore_strategy_state(strategy, checkpoint.accountant_state, checkpoint.strategy_state)
    receipts = [SignedReceipt.parse(body, sig) for body, sig in checkpoint.receipts]
    rounds = checkpoint.rounds_completed
    if len(receipts) != rounds:
        raise RoundStateError(f"checkpoint of round {rounds} carries {len(receipts)} receipts")
    if checkpoint.pending is None:
        return ResumedRounds(receipts, rounds, None, model.sha256_hex)
    # sealed, not released: ask for the same signatures again
    if rounds < 1:
        raise RoundStateError("a round-0 checkpoint cannot have a pending round")
    receipt = receipts.pop()
    rounds -= 1
    sha256_hex = checkpoint.pending.released_model_sha256.hex()
    pending = PendingRound.resumed(
        receipt,
        checkpoint,
        model=model.weights(),
        model_bytes=model.model_bytes(),
        enrolled=cohorts.draw(rounds + 1).members if cohorts else enrolled,
    )
    # The model in hand is the sealed round's aggregate, not the released one the model owner may ask for:
    # that one is read from its own checkpoint (SecureWorker.keep_stored_model) or refused, never this one.
    model.withheld, model.sha256_hex = True, sha256_hex
    return ResumedRounds(receipts, rounds, pending, sha256_hex)

"""A worker resumed from a sealed checkpoint: its receipts, its strategy's state and a round still to sign.

    worker = SecureWorker(job=job, initial_model=checkpoint.global_model, identity=...)
    resume_state(worker, checkpoint)      # SecureWorker.from_checkpoint does both

A checkpoint written while its round waited for signatures (`pending`) resumes as that same sealed round: the
restarted node asks for the same signatures again and releases exactly this aggregate, never a re-run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enclavefl.core.receipts import SignedReceipt
from enclavefl.enclave.checkpoint import NodeCheckpoint
from enclavefl.enclave.release import PendingRound
from enclavefl.enclave.strategy_state import restore_strategy_state
from enclavefl.errors import RoundStateError

if TYPE_CHECKING:
    from enclavefl.enclave.worker import SecureWorker


def resume_state(worker: SecureWorker, checkpoint: NodeCheckpoint) -> None:
    """Put `checkpoint`'s rounds, receipts and strategy state into a worker made from its model and key."""
    restore_strategy_state(worker.strategy, checkpoint.accountant_state, checkpoint.strategy_state)
    worker._receipts = [SignedReceipt.parse(body, sig) for body, sig in checkpoint.receipts]
    worker._round = checkpoint.rounds_completed
    if len(worker._receipts) != worker._round:
        raise RoundStateError(f"checkpoint of round {worker._round} carries {len(worker._receipts)} receipts")
    if checkpoint.pending is not None:  # sealed, not released: ask for the same signatures again
        if worker._round < 1:
            raise RoundStateError("a round-0 checkpoint cannot have a pending round")
        receipt = worker._receipts.pop()
        worker._round -= 1
        worker._global_sha256_hex = checkpoint.pending.released_model_sha256.hex()
        signers = worker.cohorts.draw(worker._round + 1).members if worker.cohorts else worker._enrolled
        model = worker._global
        worker._pending = PendingRound.resumed(
            receipt, checkpoint, model=model.weights(), model_bytes=model.model_bytes(), enrolled=signers
        )
        # The model in hand is the sealed round's aggregate, not the released one the model owner may ask for:
        # that one is read from its own checkpoint (SecureWorker.keep_stored_model) or refused, never this one.
        model.withheld, model.sha256_hex = True, worker._global_sha256_hex

"""The node's lifecycle: its key, its worker (new or resumed from a sealed checkpoint), and when owners are done.

    AggregatorNode(job=job, tee=tee, checkpoints=store)   # resumes from the store's latest checkpoint, if any
    node.install_model(weights)                            # the model owner's initial model starts the job
    node.owners_done.wait(3.0)                             # every enrolled owner saw the end and holds the chain

A node resuming from a checkpoint keeps the checkpointed key (one chain, one key); a round sealed before the crash
is released after the same signatures, which the host may have kept (verified again before they count).
"""

from __future__ import annotations

import logging
import threading

from enclavefl.aggregation import AggregationStrategy
from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.job import JobSpec
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.enclave.identity import NodeIdentity
from enclavefl.enclave.rounds import ENDED, NodeSignals, RoundLoop
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CheckpointError, EnclaveFLError, MalformedUpdate
from enclavefl.transport.api import NodeStatus

log = logging.getLogger(__name__)


class NodeLifecycle:
    """The part of a node that exists before and after its rounds (AggregatorNode adds the service)."""

    def __init__(
        self,
        *,
        job: JobSpec,
        identity: NodeIdentity | None,
        checkpoints: CheckpointStore | None,
        staging_slots: int,
        strategy: AggregationStrategy | None,
        signals: NodeSignals,
        loop: RoundLoop,
        initial_model: ModelWeights | None = None,
    ) -> None:
        self._job = job
        self._checkpoints = checkpoints
        self._staging_slots = staging_slots
        self._strategy = strategy
        self._signals = signals
        self._loop = loop
        # Resume before any transport exists: the TLS key is the checkpointed identity (one chain, one key).
        resumed = checkpoints.load_latest() if checkpoints is not None else None
        if resumed is not None and identity is not None:
            raise ValueError("a node resuming from a checkpoint uses the checkpointed identity; pass none")
        self.identity = _resumed_identity(resumed) if resumed is not None else identity or NodeIdentity.generate()
        self._worker: SecureWorker | None = None
        # What each data owner was last answered, to know when it is done with an ended job: it saw the end in a
        # status and holds the whole released chain (fetched before or after the end).
        self._told_of_end: set[str] = set()
        self._chain_served: dict[str, int] = {}
        # set once every enrolled data owner is done with the ended job: the process need not linger for them
        self.owners_done = threading.Event()
        if resumed is not None:
            self._resume(resumed)
        elif initial_model is not None:
            self.install_model(initial_model)

    @property
    def worker(self) -> SecureWorker | None:
        return self._worker

    def install_model(self, weights: ModelWeights, payload: ModelBytes | None = None) -> None:
        """Start the job from the model owner's initial model (its hash must be the job's)."""
        job = self._job
        expected, actual = job.initial_model_sha256, weights.sha256().hex()
        if not expected:
            raise MalformedUpdate("the job spec names no initial_model_sha256: refusing an unverifiable model")
        if actual != expected:
            raise MalformedUpdate(f"initial model hash {actual[:16]}… differs from the job's {expected[:16]}…")
        with self._signals.cond:
            if self._worker is not None:
                # The job's own model again (its hash was just checked): a model owner re-running `job submit`
                # against a node that resumed the job. Nothing to change; the job goes on from its checkpoint.
                return
            worker = SecureWorker(
                job=job,
                initial_model=weights,
                strategy=self._strategy,
                identity=self.identity,
                staging_slots=self._staging_slots,
                checkpoint_sink=self._checkpoints.save_and_open if self._checkpoints is not None else None,
                acknowledgement_sink=self._keep_acknowledgements,
                initial_model_bytes=payload,
                initial_model_sha256=actual,  # hashed above: a 38 MiB model is not hashed again
            )
            if self._checkpoints is not None:  # round 0: a restart needs neither the model owner nor a new key
                worker.keep_stored_model(self._checkpoints.save_and_open(worker.to_checkpoint()))
            self._worker = worker
            self._loop.attach(worker, "initial model accepted")

    def _resume(self, checkpoint: NodeCheckpoint) -> None:
        """Continue after round `checkpoint.rounds_completed`; an open round at the crash is redone from its start."""
        store = self._checkpoints
        try:
            worker = SecureWorker.from_checkpoint(
                checkpoint,
                job=self._job,
                strategy=self._strategy,
                staging_slots=self._staging_slots,
                checkpoint_sink=store.save_and_open if store is not None else None,
                acknowledgement_sink=self._keep_acknowledgements,
            )
        except CheckpointError:
            raise
        except EnclaveFLError as exc:
            raise CheckpointError(
                f"checkpoint of round {checkpoint.rounds_completed} does not resume: {type(exc).__name__}: {exc}"
            ) from None
        if checkpoint.pending is not None and store is not None:  # sealed, unreleased: the host's kept signatures
            kept = worker.restore_acknowledgements(store.load_acknowledgements(worker.pending_receipt()))
            log.warning(
                "round %d is sealed, not released; %d kept signature(s) verified", checkpoint.rounds_completed, kept
            )
        if store is not None:  # downloads read the released model from its checkpoint (enclave/stored_model.py)
            released = store.directory / f"checkpoint-{worker.rounds_completed:08d}.sealed"
            try:
                worker.keep_stored_model(store.open_model(released, any_sealed=checkpoint.pending is not None))
            except (CheckpointError, OSError) as exc:
                log.warning("the released model stays in memory: %s", exc)
        self._worker = worker
        message = f"resumed from the sealed checkpoint of round {checkpoint.rounds_completed}"
        self._loop.attach(worker, message)
        log.warning("node %s", message)

    def _keep_acknowledgements(self, receipt: SignedReceipt, acks: tuple[Acknowledgement, ...]) -> None:
        if self._checkpoints is None:
            return
        try:
            self._checkpoints.save_acknowledgements(receipt, acks)
        except OSError as exc:  # only a convenience for restarts: the owners can always be asked again
            log.warning("round %d: cannot keep the owners' signatures: %s", receipt.receipt.round, exc)

    # --- when the owners are done with an ended job ----------------------------------------------
    def note_told_of_end(self, owner: str) -> None:
        """`owner` was answered with a status of the ended job."""
        with self._signals.cond:
            self._told_of_end.add(owner)
            self._note_owner_done()

    def note_chain_served(self, owner: str, length: int) -> None:
        """`owner` was sent the released chain of `length` receipts."""
        with self._signals.cond:
            self._chain_served[owner] = length
            self._note_owner_done()

    def note_acknowledged(self, owner: str, round_index: int, status: NodeStatus) -> None:
        """`owner` signed round `round_index` and was answered with `status` (call under the signals' lock)."""
        if status.rounds_completed >= round_index:  # it signed a receipt extending the chain it held: it holds all
            self._chain_served[owner] = max(self._chain_served.get(owner, 0), round_index)
        if status.job_state in ENDED:
            self._told_of_end.add(owner)
        self._note_owner_done()

    def _note_owner_done(self) -> None:
        """Set owners_done once every enrolled owner saw the end and holds the whole chain (under the lock)."""
        worker = self._worker
        if not self._loop.ended or worker is None:
            return
        done = {name for name in self._told_of_end if self._chain_served.get(name) == worker.rounds_completed}
        if done >= {owner.name for owner in self._job.data_owners}:
            self.owners_done.set()


def _resumed_identity(checkpoint: NodeCheckpoint) -> NodeIdentity:
    try:
        return NodeIdentity.from_private_der(checkpoint.identity_key_der)
    except (ValueError, TypeError, EnclaveFLError) as exc:
        raise CheckpointError(f"checkpoint of round {checkpoint.rounds_completed}: unusable node key: {exc}") from None

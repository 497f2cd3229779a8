"""The secure worker: admits updates, validates and folds them, releases only aggregates of >= K.

    worker = SecureWorker(job=job, initial_model=model)
    r = worker.open_round(); worker.submit_update(update); worker.close_round()    # seal: fold, sign the receipt
    worker.acknowledge(ack); worker.release_round()                               # release once the owners signed

The state machine the enclave runs; the node (enclave/node.py) drives and serves it. It never returns one owner's
update or metrics, only the round's aggregate. Two-phase close: `close_round` folds, seals and signs the receipt;
`acknowledge` collects the owners' signatures; `release_round` shows the aggregate once every contributor and a
majority of owners (or of the round's cohort) signed (that second phase: enclave/release.py's ReleasePhase).
Optional parts (enclave/parts.py): `worker.masked`, `worker.cohorts`, `worker.evaluation` (loaded on first use).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NoReturn

from enclavefl.aggregation import AggregationStrategy, RoundAggregator
from enclavefl.core.codec import ModelBytes
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundStatus
from enclavefl.core.model_source import ModelSource
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import IncomingUpdate
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import NodeCheckpoint
from enclavefl.enclave.global_model import GlobalModel
from enclavefl.enclave.identity import NodeIdentity
from enclavefl.enclave.ingest import UpdateIngest
from enclavefl.enclave.parts import load_cohorts, load_evaluation, load_masked_mode
from enclavefl.enclave.release import AcknowledgementSink, PendingRound, ReleasePhase
from enclavefl.enclave.resume import resume_state
from enclavefl.enclave.round_state import OpenRound
from enclavefl.enclave.sealing import RoundSealer, canonical_model, start_aggregator
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.enclave.strategies import build_job_strategy, check_job_release
from enclavefl.errors import MalformedUpdate, RoundStateError, UpdateRejected, WrongRound
from enclavefl.transport.auth import Role, enrolled_keys

if TYPE_CHECKING:
    from enclavefl.enclave.cohort import RoundCohorts
    from enclavefl.enclave.evaluation import FederatedEvaluation
    from enclavefl.enclave.masked import MaskedMode

log = logging.getLogger(__name__)


class SecureWorker(ReleasePhase):
    """The aggregator role. Thread-safe: the node's transports call it from several threads."""

    def __init__(
        self,
        *,
        job: JobSpec,
        initial_model: ModelWeights,
        strategy: AggregationStrategy | None = None,
        identity: NodeIdentity | None = None,
        staging_slots: int = 1,
        checkpoint_sink: Callable[[NodeCheckpoint], object] | None = None,
        acknowledgement_sink: AcknowledgementSink | None = None,
        initial_model_bytes: ModelBytes | None = None,
        initial_model_sha256: str | None = None,
    ) -> None:
        """`initial_model_bytes`/`_sha256`: its bytes (kept, not copied, if canonical) / hash, when known."""
        if job.model_schema is not None and job.model_schema != initial_model.schema:
            raise MalformedUpdate("initial model does not match the job's model schema")
        self.job = job
        self.identity = identity or NodeIdentity.generate()
        self.strategy = strategy or build_job_strategy(job)
        check_job_release(job, self.strategy)  # also an injected strategy: K must bound every released value
        self._job_digest = job.digest()
        self._schema = initial_model.schema
        # The global model is a zero-copy view of its safetensors bytes; once checkpointed, downloads read the
        # sealed file and a FedAvg round drops the resident copy (enclave/global_model.py).
        model_bytes, weights = canonical_model(initial_model, initial_model_bytes)
        self._global_sha256_hex = initial_model_sha256 or weights.sha256().hex()  # status() must not hash it
        self._global = GlobalModel(model_bytes, weights, self._global_sha256_hex)
        self._ingest = UpdateIngest(job=job, schema=self._schema, staging_slots=staging_slots)
        self._lock = threading.Lock()
        self._round = 0  # rounds released so far; the open or sealed round is self._round + 1
        self._attempt = 0  # how many times the current round number was opened
        self._open: OpenRound | None = None
        self._pending: PendingRound | None = None  # a sealed round waiting for its signatures
        self._receipts: list[SignedReceipt] = []
        self._enrolled = frozenset(o.name for o in job.data_owners)
        self._owner_keys = {name: key for (role, name), key in enrolled_keys(job).items() if role is Role.DATA_OWNER}
        self.cohorts: RoundCohorts | None = load_cohorts().for_job(job, self.identity) if job.cohort_size else None
        self.rejections: Counter[str] = Counter()
        # Refusals of the round number being run, over all its attempts (reset when a round is released).
        self._round_rejections: Counter[str] = Counter()
        self._excluded: set[str] = set()  # owners whose update made this round number's aggregate non-finite
        self._sealer = RoundSealer(
            job=job,
            strategy=self.strategy,
            identity=self.identity,
            enrolled=self._enrolled,
            checkpoint_sink=checkpoint_sink,
        )
        # Called with a round's signatures just before its release (the host keeps them; a restart reuses them).
        self._acknowledgement_sink = acknowledgement_sink
        self._evaluation: FederatedEvaluation | None = None
        self.masked: MaskedMode | None = load_masked_mode().MaskedMode(self) if job.masked else None

    @property
    def evaluation(self) -> FederatedEvaluation:
        with self._lock:
            if self._evaluation is None:
                self._evaluation = load_evaluation(job=self.job, lock=self._lock, released_round=lambda: self._round)
            return self._evaluation

    # --- checkpoints -----------------------------------------------------------------------------
    def to_checkpoint(self) -> NodeCheckpoint:
        """The state after the last sealed round (an open round is not part of it: it restarts)."""
        with self._lock:
            if self._pending is not None:
                return self._pending.checkpoint
            return self._sealer.checkpoint(self._round, self._global.weights(), self._receipts)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: NodeCheckpoint,
        *,
        job: JobSpec,
        strategy: AggregationStrategy | None = None,
        staging_slots: int = 1,
        checkpoint_sink: Callable[[NodeCheckpoint], object] | None = None,
        acknowledgement_sink: AcknowledgementSink | None = None,
    ) -> SecureWorker:
        """A worker at the end of round `checkpoint.rounds_completed`, signing with the checkpointed key."""
        if checkpoint.job_digest != job.digest():
            raise RoundStateError("the checkpoint belongs to another job")
        worker = cls(
            job=job,
            initial_model=checkpoint.global_model,
            strategy=strategy,
            identity=NodeIdentity.from_private_der(checkpoint.identity_key_der),
            staging_slots=staging_slots,
            checkpoint_sink=checkpoint_sink,
            acknowledgement_sink=acknowledgement_sink,
        )
        resumed = resume_state(checkpoint, worker.strategy, worker._global, worker.cohorts, worker._enrolled)
        worker._receipts, worker._round, worker._pending = resumed.receipts, resumed.rounds_completed, resumed.pending
        worker._global_sha256_hex = resumed.global_model_sha256_hex
        return worker

    # --- status ----------------------------------------------------------------------------------
    @property
    def phase(self) -> RoundPhase:
        if self._open is not None:
            return RoundPhase.OPEN
        if self._pending is not None:
            return RoundPhase.SIGNING
        return RoundPhase.FINISHED if self._round >= self.job.rounds else RoundPhase.WAITING

    def status(self) -> RoundStatus:
        with self._lock:
            phase, pending, state = self.phase, self._pending, self._open
            return RoundStatus(
                round=self._round + (1 if phase in (RoundPhase.OPEN, RoundPhase.SIGNING) else 0),
                phase=phase,
                contributions=len(pending.contributors if pending else state.contributors if state else ()),
                rounds_total=self.job.rounds,
                global_model_sha256=self._global_sha256_hex,
            )

    @property
    def attempt(self) -> int:
        """How many times the current (or last) round number has been opened."""
        return self._attempt

    @property
    def rounds_completed(self) -> int:
        return self._round

    @property
    def receipts(self) -> tuple[SignedReceipt, ...]:
        """The signed receipt of every released round, in order."""
        with self._lock:
            return tuple(self._receipts)

    def released_head(self) -> tuple[int, bytes]:
        """(rounds released, SHA-256 of the last released receipt or b""), read together."""
        with self._lock:
            return len(self._receipts), self._receipts[-1].sha256 if self._receipts else b""

    @property
    def global_model(self) -> ModelWeights:
        """The last released global model (WrongRound while a sealed round awaits signatures)."""
        with self._lock:
            self._refuse_while_pending()
            return self._global.weights()

    def keep_stored_model(self, stored: StoredModel) -> None:
        """The released model's sealed checkpoint (lifecycle: round 0, a resume): downloads read it from there."""
        with self._lock:
            if stored.rounds == self._round:
                self._global = self._global.with_stored(stored, signing=self._pending is not None)

    def global_model_bytes(self, round_index: int) -> ModelSource:
        """The model a round starts from, as safetensors bytes."""
        with self._lock:
            self._refuse_while_pending()
            current = self._round + 1 if self._open is not None else self._round
            if round_index != current:
                raise WrongRound(f"asked for the model of round {round_index}, the node is at round {current}")
            return self._global.payload()

    def released_model_bytes(self, round_index: int) -> ModelSource:
        """The model released after `round_index` while it is the last released (the model owner evaluates it)."""
        with self._lock:
            if round_index != self._round or round_index < 1:
                raise WrongRound(f"asked for the model released after round {round_index}; the last is {self._round}")
            return self._global.payload()

    # --- rounds ----------------------------------------------------------------------------------
    def open_round(self) -> int:
        with self._lock:
            if self._open is not None:
                raise RoundStateError(f"round {self._round + 1} is already open")
            if self._pending is not None:
                raise RoundStateError(f"round {self._pending.round} is sealed and waits for signatures")
            if self._round >= self.job.rounds:
                raise RoundStateError(f"the job's {self.job.rounds} rounds are done")
            self._attempt += 1  # before the aggregator: a masked round's graph seed includes the attempt
            index = self._round + 1
            aggregator: RoundAggregator
            if self.masked is not None:
                aggregator, next_bytes = self.masked.start_round(self._global.weights(), index, self._attempt), None
            else:
                aggregator, next_bytes = start_aggregator(self.strategy, self._global)
                self._ingest.prepare_slot()  # made now, on its own thread: off the first upload's path
            cohort = self.cohorts.draw(index) if self.cohorts is not None else None  # after the round opened
            self._open = OpenRound(
                index=index, attempt=self._attempt, aggregator=aggregator, next_global_bytes=next_bytes, cohort=cohort
            )
            log.info("round %d open", index)
            return index

    def open_round_state(self, round_index: int, what: str = "update") -> OpenRound:
        """The open round if it is round `round_index` (call under `lock`); WrongRound otherwise."""
        state = self._open
        if state is None:
            raise WrongRound(f"{what} for round {round_index}, but no round is open")
        if round_index != state.index:
            raise WrongRound(f"{what} for round {round_index}, the open round is {state.index}")
        return state

    def drop_open_round(self) -> None:
        """Abandon the open round: nothing is sealed, it may be opened again (call under `lock`)."""
        if self._open is not None:
            self._open.closed = True
        self._open = None

    @property
    def lock(self) -> threading.Lock:
        """The lock that guards the round state (for the worker's parts: masked mode)."""
        return self._lock

    def submit_update(self, update: IncomingUpdate) -> bytes:
        """Receive, validate and fold one plaintext update; returns its payload SHA-256. Identity, round and
        duplicates are checked before any byte is read; the stream goes into a staging slot (enclave/ingest.py) and
        is folded only once complete, valid and matching its commitment. Refused: a precise UpdateRejected (counted).
        """
        header = update.header
        try:
            self._ingest.check_header(header)
            with self._lock:
                state = self.open_round_state(header.round)
                state.admit(header.owner, excluded=self._excluded)
            try:
                with self._ingest.staged(update, still_open=state.check_open) as staged:
                    with self._lock:
                        state.check_open()
                        state.aggregator.fold_inplace(staged.weights, weight=float(header.num_examples))
                        state.record(
                            header.owner,
                            header.commitment,
                            num_examples=header.num_examples,
                            metrics=header.metrics,
                            bound=float(header.num_examples) * staged.max_abs,
                            evaluation=header.evaluation,
                            evaluation_examples=header.evaluation_examples,
                        )
                    return staged.payload_sha256
            finally:
                with self._lock:
                    state.in_flight.discard(header.owner)
        except UpdateRejected as exc:
            self.count_rejection(header.owner, exc)

    def count_rejection(self, sender: str, exc: UpdateRejected) -> NoReturn:
        """Count and log a refusal (also those a transport makes before calling in), then raise it."""
        with self._lock:
            self.rejections[type(exc).__name__] += 1
            self._round_rejections[type(exc).__name__] += 1
        # Class only: the message may carry the owner's numbers and this is the host's log (the owner hears it all).
        log.warning("an update from %r was refused: %s", sender, type(exc).__name__)
        raise exc

    def close_round(self) -> SignedReceipt:
        """Finalize and seal the open round; returns its signed receipt. Nothing is released (see release_round).

        Fewer than K updates: nothing is sealed or released (NotEnoughContributions). An aggregate that is not
        finite: the round is dropped and redone without the update(s) that overflowed it (NonFiniteAggregate).
        """
        with self._lock:
            state = self._open
            if state is None:
                raise RoundStateError("no round is open")
            self._open = None
            state.closed = True  # sealed or, on an error, dropped: it may be opened again
            self._ingest.retire_slots()  # nothing folds into a closed round: its slot is freed, before the seal
            self._pending = self._sealer.seal(
                state,
                schema=self._schema,
                global_sha256_hex=self._global_sha256_hex,
                receipts=self._receipts,  # read under the lock, not kept
                rejected=self._round_rejections,
                exclude=self._exclude,
            )
            log.info(
                "round %d sealed with %d contribution(s); waiting for signatures", state.index, len(state.contributors)
            )
            return self._pending.receipt

    def _exclude(self, offenders: Iterable[str], reason: str) -> None:
        """Leave `offenders` out of the round when it reopens, counting each as refused (under the lock)."""
        offenders = list(offenders)
        self._excluded.update(offenders)
        self.rejections[reason] += len(offenders)
        self._round_rejections[reason] += len(offenders)

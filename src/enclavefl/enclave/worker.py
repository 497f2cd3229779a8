"""The secure worker: admits updates, validates and folds them, releases only aggregates of >= K.

This object is the state machine the enclave runs; transports (in-memory, gRPC) call into it. It never
returns one owner's update or metrics, only the round's aggregate. A round closes in two phases:
`close_round` folds, seals and signs the receipt; `acknowledge` collects the owners' signatures over it;
`release_round` makes the aggregate visible once every contributor and a majority of owners signed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NoReturn

import numpy as np

from enclavefl.aggregation import AggregationStrategy, RoundAggregator
from enclavefl.aggregation.fedavg import FedAvg, accumulator_dtype
from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes, decode_weights, encode_parts, encode_weights, parse_header
from enclavefl.core.commitments import COMMITMENT_BYTES, SALT_BYTES, check_commitment
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundStatus, RoundSummary, UpdateMessage
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, SignedReceipt, sign_receipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import NodeCheckpoint, PendingRelease, restore_strategy_state, strategy_state
from enclavefl.enclave.crash_points import crash_mid_stream, crash_point
from enclavefl.enclave.evaluation import EvaluationTally, TrainingMetricsTally, release_training_metrics
from enclavefl.enclave.finite import check_finite_aggregate, overflow_limit, overflow_offenders
from enclavefl.enclave.identity import NodeIdentity
from enclavefl.enclave.masked_round import MaskedRound
from enclavefl.enclave.release import PendingRound
from enclavefl.enclave.staging import StagingPool, ingest_stream
from enclavefl.enclave.strategies import build_job_strategy, check_job_release
from enclavefl.errors import (
    AcknowledgementRefused,
    CommitmentMismatch,
    DuplicateUpdate,
    MalformedUpdate,
    MaskingRefused,
    NonFiniteAggregate,
    NotEnoughContributions,
    NotEnrolled,
    RoundStateError,
    TooManyExamples,
    UnmaskingFailed,
    UpdateExcluded,
    UpdateRejected,
    UpdateTooLarge,
    WrongRound,
)
from enclavefl.privacy import CentralDP, PrivacySpent
from enclavefl.secagg.graph import graph_seed
from enclavefl.secagg.messages import KeyAdvertisement, ShareBundle, UnmaskShares
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.binding import compute_report_data
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.auth import Role, enrolled_keys

log = logging.getLogger(__name__)

HEADER_ALLOWANCE = 64 * 1024  # safetensors header bytes allowed on top of the tensors' size
AcknowledgementSink = Callable[[SignedReceipt, tuple[Acknowledgement, ...]], object]


class SecureWorker:
    """The aggregator role. Thread-safe: transports may call it from several threads."""

    def __init__(
        self,
        *,
        job: JobSpec,
        initial_model: ModelWeights,
        tee: TeeBackend,
        strategy: AggregationStrategy | None = None,
        identity: NodeIdentity | None = None,
        staging_slots: int = 1,
        checkpoint_sink: Callable[[NodeCheckpoint], object] | None = None,
        acknowledgement_sink: AcknowledgementSink | None = None,
        initial_model_bytes: ModelBytes | None = None,
    ) -> None:
        """`initial_model_bytes`: the bytes `initial_model` was decoded from, kept (not copied) if canonical."""
        if job.model_schema is not None and job.model_schema != initial_model.schema:
            raise MalformedUpdate("initial model does not match the job's model schema")
        self.job = job
        self.tee = tee
        self.identity = identity or NodeIdentity.generate()
        self.strategy = strategy or build_job_strategy(job)
        check_job_release(job, self.strategy)  # also an injected strategy: K must bound every released value
        self._schema = initial_model.schema
        # The global model is a zero-copy view of its safetensors bytes: one copy serves fold and download.
        self._global_bytes, self._global = _canonical_model(initial_model, initial_model_bytes)
        self._global_sha256_hex = self._global.sha256().hex()  # kept with _global: status() must not hash the model
        self._pool = StagingPool(nbytes=self._schema.nbytes, slots=staging_slots)
        self._serial = 0  # changes at every open/close: an upload in flight checks it is still wanted
        self._attempt = 0  # how many times the current round number was opened
        self._in_flight: set[str] = set()
        self._update_commitments: list[bytes] = []  # what the receipt lists: never a plain payload hash
        self._receipts: list[SignedReceipt] = []
        self._size_limit = job.update_size_limit() or self._schema.nbytes
        self._enrolled = {o.name for o in job.data_owners}
        self._owner_keys = {name: key for (role, name), key in enrolled_keys(job).items() if role is Role.DATA_OWNER}
        self._pending: PendingRound | None = None  # a sealed round waiting for its signatures
        self._lock = threading.Lock()
        self._round = 0  # rounds completed so far; the open round is self._round + 1
        self._phase = RoundPhase.WAITING
        self._aggregator: RoundAggregator | MaskedRound | None = None
        # The next global model's safetensors buffer when the strategy accumulates in place (plain FedAvg):
        # its tensors are the accumulators, so closing a round copies nothing (docs/performance.md, "Node memory").
        self._next_global_bytes: bytearray | None = None
        self._contributors: set[str] = set()
        self._train_metrics = TrainingMetricsTally()
        self.rejections: Counter[str] = Counter()
        # Refusals of the round number being run, over all its attempts (reset when a round is released).
        self._round_rejections: Counter[str] = Counter()
        self._excluded: set[str] = set()  # owners whose update made this round number's aggregate non-finite
        self._contribution_bounds: dict[str, float] = {}  # weight x max|value| of each folded update
        # Called with each round's checkpoint BEFORE its aggregate is released: a crash either loses the round
        # (nothing left the enclave, it is redone) or finds it sealed on disk; never released-but-unaccounted.
        self._checkpoint_sink = checkpoint_sink
        # Called with a round's signatures just before its release (the host keeps them; a restart reuses them).
        self._acknowledgement_sink = acknowledgement_sink

    # --- checkpoints (issue 6) -------------------------------------------------------------
    def to_checkpoint(self) -> NodeCheckpoint:
        """The state after the last sealed round (an open round is not part of it: it restarts)."""
        with self._lock:
            if self._pending is not None:
                return self._pending.checkpoint
            return self._checkpoint_locked(self._round, self._global, tuple(self._receipts))

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: NodeCheckpoint,
        *,
        job: JobSpec,
        tee: TeeBackend,
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
            tee=tee,
            strategy=strategy,
            identity=NodeIdentity.from_private_der(checkpoint.identity_key_der),
            staging_slots=staging_slots,
            checkpoint_sink=checkpoint_sink,
            acknowledgement_sink=acknowledgement_sink,
        )
        restore_strategy_state(worker.strategy, checkpoint.accountant_state, checkpoint.strategy_state)
        worker._receipts = [SignedReceipt.parse(body, sig) for body, sig in checkpoint.receipts]
        worker._round = checkpoint.rounds_completed
        if len(worker._receipts) != worker._round:
            raise RoundStateError(f"checkpoint of round {worker._round} carries {len(worker._receipts)} receipts")
        if checkpoint.pending is not None:  # sealed, not released: ask for the same signatures again
            worker._resume_pending(checkpoint, checkpoint.pending)
            return worker
        if worker._round >= job.rounds:
            worker._phase = RoundPhase.FINISHED
        return worker

    def _resume_pending(self, checkpoint: NodeCheckpoint, pending: PendingRelease) -> None:
        if checkpoint.rounds_completed < 1:
            raise RoundStateError("a round-0 checkpoint cannot have a pending round")
        receipt = self._receipts.pop()
        self._round = checkpoint.rounds_completed - 1
        self._global_sha256_hex = pending.released_model_sha256.hex()
        summary = RoundSummary(
            round=receipt.receipt.round,
            contributions=receipt.receipt.contributions,
            global_model_sha256=receipt.receipt.global_model_sha256.hex(),
            metrics=dict(pending.metrics),
            rejected=dict(pending.rejected),
        )
        self._pending = PendingRound(
            receipt=receipt,
            model=self._global,
            model_bytes=self._global_bytes,
            summary=summary,
            contributors=frozenset(pending.contributors),
            enrolled=frozenset(self._enrolled),
            checkpoint=checkpoint,
        )
        self._phase = RoundPhase.SIGNING

    def _checkpoint_locked(
        self,
        rounds: int,
        model: ModelWeights,
        receipts: tuple[SignedReceipt, ...],
        pending: PendingRelease | None = None,
    ) -> NodeCheckpoint:
        accountant, optimizer = strategy_state(self.strategy)
        return NodeCheckpoint(
            job_digest=self.job.digest(),
            rounds_completed=rounds,
            global_model=model,
            identity_key_der=self.identity.private_der(),
            receipts=tuple((r.body, r.signature) for r in receipts),
            accountant_state=accountant,
            strategy_state=optimizer,
            pending=pending,
        )

    # --- attestation ---------------------------------------------------------------------
    def attest(self, nonce: bytes) -> AttestationBundle:
        """Evidence binding this node's key, the job digest and the caller's fresh nonce."""
        digest = self.job.digest()
        report_data = compute_report_data(tls_spki_sha256=self.identity.spki_sha256, job_digest=digest, nonce=nonce)
        return AttestationBundle(
            evidence=self.tee.evidence(report_data),
            node_spki_sha256=self.identity.spki_sha256,
            job_digest=digest,
            node_public_key_pem=self.identity.public_key_pem,
        )

    # --- rounds --------------------------------------------------------------------------
    @property
    def global_model(self) -> ModelWeights:
        """The last released global model (WrongRound while a sealed round awaits signatures)."""
        with self._lock:
            self._refuse_while_pending()
            return self._global

    def status(self) -> RoundStatus:
        with self._lock:
            pending = self._pending
            return RoundStatus(
                round=self._round + (1 if self._phase in (RoundPhase.OPEN, RoundPhase.SIGNING) else 0),
                phase=self._phase,
                contributions=len(pending.contributors) if pending is not None else len(self._contributors),
                rounds_total=self.job.rounds,
                global_model_sha256=self._global_sha256_hex,
            )

    def open_round(self) -> int:
        with self._lock:
            if self._phase is RoundPhase.OPEN:
                raise RoundStateError(f"round {self._round + 1} is already open")
            if self._pending is not None:
                raise RoundStateError(f"round {self._pending.round} is sealed and waits for signatures")
            if self._round >= self.job.rounds:
                raise RoundStateError(f"the job's {self.job.rounds} rounds are done")
            self._serial += 1
            self._attempt += 1  # before the aggregator: a masked round's graph seed includes the attempt
            self._aggregator, self._next_global_bytes = self._start_aggregator()
            self._update_commitments = []
            self._contributors = set()
            self._train_metrics = TrainingMetricsTally()
            self._contribution_bounds = {}
            self._phase = RoundPhase.OPEN
            log.info("round %d open", self._round + 1)
            return self._round + 1

    # --- masked mode (issue 16): the enclave relays the owners' keys and shares, then unmasks the sum ----------
    def _masked(self, round_index: int) -> MaskedRound:
        """The open masked round (call under the lock); MaskingRefused / WrongRound otherwise."""
        if not self.job.masked:
            raise MaskingRefused(f"job {self.job.name!r} is not masked")
        if self._phase is not RoundPhase.OPEN or not isinstance(self._aggregator, MaskedRound):
            raise WrongRound(f"masked-mode message for round {round_index}, but no round is open")
        if round_index != self._round + 1:
            raise WrongRound(f"masked-mode message for round {round_index}, the open round is {self._round + 1}")
        return self._aggregator

    def masking_attempt(self, round_index: int) -> int:
        """Which opening of the round this is: owners derive the round's graph seed from job, round and attempt."""
        with self._lock:
            self._masked(round_index)
            return self._attempt

    def advertise_keys(self, round_index: int, ad: KeyAdvertisement) -> None:
        with self._lock:
            self._masked(round_index).advertise(ad)

    def close_masking_phase(self, round_index: int, phase: str) -> None:
        """The node ends a masked-mode phase: "keys", "shares" or "uploads" (NotEnoughContributions below K)."""
        closers = {"keys": "close_keys", "shares": "close_shares", "uploads": "close_uploads"}
        if phase not in closers:
            raise ValueError(f"unknown masked-mode phase {phase!r}; the phases are {', '.join(closers)}")
        with self._lock:
            try:
                getattr(self._masked(round_index), closers[phase])()
            except NotEnoughContributions:  # too few owners got through: the round is lost, as at close_round
                self._phase = RoundPhase.WAITING
                self._aggregator, self._next_global_bytes = None, None
                self._serial += 1
                raise

    def masked_payload_bytes(self, round_index: int) -> int:
        with self._lock:
            return self._masked(round_index).payload_bytes

    def masking_phase_closed(self, round_index: int, phase: str) -> bool:
        with self._lock:
            return self._masked(round_index).closed(phase)

    def masking_waiting_for(self, round_index: int) -> tuple[str, int, int]:
        """(open phase, owners through it, owners expected): what the node's round loop waits on."""
        with self._lock:
            return self._masked(round_index).waiting_for()

    def masking_roster(self, round_index: int) -> tuple[KeyAdvertisement, ...]:
        with self._lock:
            return self._masked(round_index).roster()

    def submit_share_bundles(self, round_index: int, owner: str, bundles: Sequence[ShareBundle]) -> None:
        with self._lock:
            self._masked(round_index).submit_bundles(owner, bundles)

    def share_bundles_for(self, round_index: int, owner: str) -> tuple[ShareBundle, ...]:
        with self._lock:
            return self._masked(round_index).bundles_for(owner)

    def submit_masked_update(
        self, *, owner: str, round_index: int, payload: bytes, commitment_salt: bytes, commitment: bytes
    ) -> None:
        """Fold one owner's masked input (little-endian integers modulo 2^bits) into the round's masked sum."""
        try:
            with self._lock:
                if self._enrolled and owner not in self._enrolled:
                    raise NotEnrolled(f"{owner!r} is not enrolled in job {self.job.name!r}")
                masked = self._masked(round_index)
                masked.check_upload(owner, len(payload))
            digest = hashlib.sha256(payload).digest()
            check_commitment(salt=commitment_salt, payload_sha256=digest, commitment=commitment)
            with self._lock:
                self._masked(round_index).fold_masked(owner, payload)
                self._contributors.add(owner)
                self._update_commitments.append(commitment)
        except UpdateRejected as exc:
            self.count_rejection(owner, exc)

    def unmasking_survivors(self, round_index: int) -> tuple[str, ...]:
        with self._lock:
            return self._masked(round_index).survivors()

    def submit_unmask_shares(self, round_index: int, answer: UnmaskShares) -> None:
        with self._lock:
            self._masked(round_index).submit_answer(answer)

    def global_model_bytes(self, round_index: int) -> ModelBytes:
        """The model a round starts from, as safetensors bytes."""
        with self._lock:
            self._refuse_while_pending()
            current = self._round + 1 if self._phase is RoundPhase.OPEN else self._round
            if round_index != current:
                raise WrongRound(f"asked for the model of round {round_index}, the node is at round {current}")
            return self._global_bytes

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        """The model released after `round_index` (the last released round): what its receipt names.

        For the model owner's own evaluation of each released model (Flower's `evaluate_fn`). It stays available
        until the next round is released, through that round's training and signing.
        """
        with self._lock:
            if round_index != self._round or round_index < 1:
                raise WrongRound(
                    f"asked for the model released after round {round_index}; the last released is {self._round}"
                )
            return self._global_bytes

    def submit_update(self, message: UpdateMessage) -> None:
        """Validate and fold one update; raise a precise UpdateRejected leaf (counted) when refused."""
        if len(message.payload) > self._size_limit + HEADER_ALLOWANCE:
            self.count_rejection(
                message.owner,
                UpdateTooLarge(
                    f"update is {len(message.payload)} bytes, the job's limit is {self._size_limit} + header"
                ),
            )
        self.submit_update_stream(
            owner=message.owner,
            round_index=message.round,
            num_examples=message.num_examples,
            metrics=message.metrics,
            chunks=(message.payload,),
            commitment_salt=message.commitment_salt,
            commitment=message.commitment(),
        )

    def submit_update_stream(
        self,
        *,
        owner: str,
        round_index: int,
        num_examples: int,
        metrics: Mapping[str, float],
        chunks: Iterable[bytes | memoryview],
        commitment_salt: bytes,
        commitment: bytes,
    ) -> bytes:
        """Receive, validate and fold one streamed update; returns its payload SHA-256.

        Identity, round and duplicates are checked before any byte is read; the stream then goes into a
        staging slot (enclave/staging.py), checked as it arrives, and is folded only once complete and valid,
        and only if `commitment` opens to the received bytes under the owner's `commitment_salt` (the receipt
        lists the commitment, never the payload hash). Raises a precise UpdateRejected leaf (counted) when refused.
        """
        try:
            return self._ingest(owner, round_index, num_examples, metrics, chunks, commitment_salt, commitment)
        except UpdateRejected as exc:
            self.count_rejection(owner, exc)

    def count_rejection(self, sender: str, exc: UpdateRejected) -> NoReturn:
        """Count a refusal (also those a transport makes before calling in, e.g. NotEnrolled), then raise it."""
        with self._lock:
            self.rejections[type(exc).__name__] += 1
            self._round_rejections[type(exc).__name__] += 1
        # Class only: the message may carry the owner's own numbers (its example count, how many values were NaN),
        # and this log is the host's console. The owner itself hears the whole message in its refusal.
        log.warning("an update from %r was refused: %s", sender, type(exc).__name__)
        raise exc

    @property
    def receipts(self) -> tuple[SignedReceipt, ...]:
        """The signed receipt of every closed round, in order."""
        with self._lock:
            return tuple(self._receipts)

    def released_head(self) -> tuple[int, bytes]:
        """(rounds released, SHA-256 of the last released receipt or b""), read together."""
        with self._lock:
            return len(self._receipts), self._receipts[-1].sha256 if self._receipts else b""

    @property
    def attempt(self) -> int:
        """How many times the current (or last) round number has been opened."""
        return self._attempt

    @property
    def rounds_completed(self) -> int:
        return self._round

    def close_round(self) -> SignedReceipt:
        """Finalize and seal the open round; returns its signed receipt. Nothing is released (see release_round).

        Fewer than K updates: nothing is sealed or released (NotEnoughContributions).
        """
        with self._lock:
            if self._phase is not RoundPhase.OPEN or self._aggregator is None:
                raise RoundStateError("no round is open")
            count = self._aggregator.contributions
            if count < self.job.min_contributions:
                self._phase = RoundPhase.WAITING
                self._aggregator, self._next_global_bytes = None, None
                self._serial += 1
                raise NotEnoughContributions(
                    f"round {self._round + 1}: {count} update(s) arrived, the job requires at least "
                    f"{self.job.min_contributions}; no aggregate is released"
                )
            new_round = self._round + 1
            before = strategy_state(self.strategy)  # finalize() steps server optimizers and the accountant
            try:
                global_bytes, new_global = self._finalized_model(self._aggregator)
            except (UnmaskingFailed, NotEnoughContributions):  # masked mode: the round is lost, nothing leaves
                restore_strategy_state(self.strategy, *before)
                self._phase = RoundPhase.WAITING
                self._aggregator, self._next_global_bytes = None, None
                self._serial += 1
                raise
            try:
                check_finite_aggregate(new_global, round_index=new_round)
            except NonFiniteAggregate as exc:
                restore_strategy_state(self.strategy, *before)  # the round never happened: redone from scratch
                self._refuse_round_locked(exc)
            crash_point("round-finalized", new_round)
            model_sha256 = new_global.sha256()
            previous = self._receipts[-1].sha256 if self._receipts else GENESIS_SHA256
            spent = self.privacy_spent()  # finalize() charged this round to the accountant
            receipt = RoundReceipt(
                job_digest=self.job.digest(),
                round=new_round,
                previous_sha256=previous,
                global_model_sha256=model_sha256,
                contributions=count,
                update_commitments=tuple(sorted(self._update_commitments)),
                dp=self.job.dp,
                cumulative_epsilon=spent.epsilon if spent is not None else None,
            )
            signed = sign_receipt(receipt, self.identity.private_key)
            metrics = release_training_metrics(self._train_metrics, self.job)
            summary = RoundSummary(
                round=new_round,
                contributions=count,
                global_model_sha256=model_sha256.hex(),
                metrics=metrics,
                rejected=dict(self._round_rejections),
            )
            sealed = PendingRelease(
                contributors=tuple(sorted(self._contributors)),
                metrics=metrics,
                rejected=dict(self._round_rejections),
                released_model_sha256=bytes.fromhex(self._global_sha256_hex),
            )
            checkpoint = self._checkpoint_locked(new_round, new_global, (*self._receipts, signed), sealed)
            # Sealed before its receipt leaves: a restart finds this round and asks for the same signatures again.
            if self._checkpoint_sink is not None:
                self._checkpoint_sink(checkpoint)
            crash_point("round-sealed", new_round)
            self._pending = PendingRound(
                receipt=signed,
                model=new_global,
                model_bytes=global_bytes,
                summary=summary,
                contributors=frozenset(self._contributors),
                enrolled=frozenset(self._enrolled),
                checkpoint=checkpoint,
            )
            self._aggregator, self._next_global_bytes = None, None
            self._serial += 1
            self._phase = RoundPhase.SIGNING
            log.info("round %d sealed with %d contribution(s); waiting for signatures", new_round, count)
            return signed

    # --- release: the second phase -----------------------------------------------------------
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
        """Count signatures the host kept from before a restart; only those that verify under an enrolled key.

        Returns how many counted. Anything else in the host's file is ignored: the owners are asked again.
        """
        counted = 0
        for ack in acks:
            if ack.owner not in self._owner_keys:
                continue  # a keyless owner's acknowledgement is trusted only from the owner object in process
            try:
                self.acknowledge(ack)
            except UpdateRejected as exc:
                log.warning("a kept signature of %r does not count: %s", ack.owner, exc)
                continue
            counted += 1
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
            self._global_bytes, self._global = pending.model_bytes, pending.model
            self._global_sha256_hex = pending.summary.global_model_sha256
            self._round = pending.round
            self._attempt = 0
            self._receipts.append(pending.receipt)
            self._pending = None
            self._round_rejections, self._excluded = Counter(), set()
            self._phase = RoundPhase.FINISHED if self._round >= self.job.rounds else RoundPhase.WAITING
            log.info("round %d released (%d signature(s))", self._round, len(pending.acks))
            return pending.summary

    def _refuse_round_locked(self, exc: NonFiniteAggregate) -> NoReturn:
        """Drop the open round (nothing sealed) and leave out the update(s) that overflowed it when it reopens."""
        offenders = overflow_offenders(self._contribution_bounds, overflow_limit(self._schema))
        self._excluded.update(offenders)
        self.rejections[type(exc).__name__] += len(offenders)
        self._round_rejections[type(exc).__name__] += len(offenders)
        self._phase = RoundPhase.WAITING
        self._aggregator, self._next_global_bytes = None, None
        self._serial += 1
        # No names: this message reaches the host's console; each left-out owner is told (UpdateExcluded).
        raise NonFiniteAggregate(
            f"{exc}; the round is redone without the {len(offenders)} update(s) with the largest contributions"
        ) from None

    def _refuse_while_pending(self) -> None:
        if self._pending is not None:
            raise WrongRound(
                f"round {self._pending.round} is sealed and waits for its contributors' signatures: "
                "no model is released until then"
            )

    # --- federated evaluation (issue 5) ---------------------------------------------------
    # Each data owner evaluates the released global model on its own held-out data and reports its example
    # count and metrics. Only example-weighted means over at least K owners leave, once per round (a second
    # release over a different set of owners would let a difference reveal one owner's numbers).
    _evaluation: EvaluationTally | None = None

    def submit_evaluation(self, owner: str, round: int, num_examples: int, metrics: Mapping[str, float]) -> None:
        """Record `owner`'s metrics on the global model released after `round` (0: the initial model)."""
        if self._enrolled and owner not in self._enrolled:
            raise NotEnrolled(f"{owner!r} is not enrolled in job {self.job.name!r}")
        if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
            raise MalformedUpdate(f"num_examples must be an integer >= 1, got {num_examples!r}")
        if not metrics:
            raise MalformedUpdate("an evaluation must report at least one metric")
        _check_metrics(metrics)
        with self._lock:
            if round != self._round:
                raise WrongRound(f"evaluation of round {round}, the released global model is round {self._round}")
            tally = self._evaluation
            if tally is None or tally.round != round:
                tally = self._evaluation = EvaluationTally(round=round, names=frozenset(metrics))
            tally.add(owner, num_examples, metrics)

    def close_evaluation(self) -> Mapping[str, float]:
        """Example-weighted mean of each metric; NotEnoughContributions (nothing released) below K owners.

        In a DP job nothing is released (an empty mapping), for the reason training metrics are withheld there
        (evaluation.release_training_metrics): self-reported numbers of unbounded sensitivity, with no epsilon."""
        with self._lock:
            tally = self._evaluation
            reported = len(tally.owners) if tally is not None and tally.round == self._round else 0
            if tally is None or reported < self.job.min_contributions:
                raise NotEnoughContributions(
                    f"evaluation of round {self._round}: {reported} owner(s) reported, the job requires at least "
                    f"{self.job.min_contributions}; nothing is released"
                )
            released = tally.release()  # once per round, in a DP job too: a later call finds the round closed
            return {} if self.job.dp is not None else released

    # --- privacy (issue 5) -----------------------------------------------------------------
    def privacy_spent(self) -> PrivacySpent | None:
        """Epsilon spent so far and the DP parameters (for receipts), or None when the job has no DP."""
        strategy: object = self.strategy
        while strategy is not None:  # server optimizers wrap the DP mean: follow `.inner`
            spent = getattr(strategy, "privacy_spent", None)
            if callable(spent):
                result = spent()
                assert isinstance(result, PrivacySpent)
                return result
            strategy = getattr(strategy, "inner", None)
        return None

    # --- internals -----------------------------------------------------------------------
    def _start_aggregator(self) -> tuple[RoundAggregator | MaskedRound, bytearray | None]:
        """The round's aggregator; for plain FedAvg on float tensors, accumulating inside the next model's bytes.

        The next model has the global model's schema, so its safetensors header is the global model's header
        byte for byte; only the data section is new. A masked round sums integers of its own (secagg).
        """
        if self.job.masked:
            context = graph_seed(job_digest=self.job.digest(), round_index=self._round + 1, attempt=self._attempt)
            dp = self.strategy if isinstance(self.strategy, CentralDP) else None
            return MaskedRound(job=self.job, global_model=self._global, context=context, dp=dp), None
        if not isinstance(self.strategy, FedAvg) or any(
            accumulator_dtype(a.dtype) != a.dtype for a in self._global.values()
        ):
            return self.strategy.start_round(self._global), None
        data_start = parse_header(self._global_bytes).data_start
        next_bytes = bytearray(len(self._global_bytes))
        next_bytes[:data_start] = self._global_bytes[:data_start]
        return self.strategy.start_round(self._global, accumulators=decode_weights(next_bytes)), next_bytes

    def _finalized_model(self, aggregator: RoundAggregator | MaskedRound) -> tuple[ModelBytes, ModelWeights]:
        """The new global model's safetensors bytes and its (read-only, zero-copy) weights."""
        finalized = aggregator.finalize()
        in_place = self._next_global_bytes
        if in_place is not None:
            view = memoryview(in_place).toreadonly()
            new_global = decode_weights(view)
            if all(np.shares_memory(finalized[n], new_global[n]) for n in finalized):
                return in_place, new_global  # bytearray: never written again (the aggregator is dropped)
        global_bytes = encode_weights(finalized)
        return global_bytes, decode_weights(global_bytes)

    def _ingest(
        self,
        owner: str,
        round_index: int,
        num_examples: int,
        metrics: Mapping[str, float],
        chunks: Iterable[bytes | memoryview],
        commitment_salt: bytes,
        commitment: bytes,
    ) -> bytes:
        if self._enrolled and owner not in self._enrolled:
            raise NotEnrolled(f"{owner!r} is not enrolled in job {self.job.name!r}")
        if len(commitment_salt) != SALT_BYTES or len(commitment) != COMMITMENT_BYTES:
            raise CommitmentMismatch(
                f"an upload carries a {SALT_BYTES}-byte commitment salt and a {COMMITMENT_BYTES}-byte commitment, "
                f"got {len(commitment_salt)} and {len(commitment)} bytes"
            )
        if num_examples < 1:
            raise MalformedUpdate(f"num_examples must be >= 1, got {num_examples}")
        if self.job.masked:
            raise MaskingRefused("this job is masked: plaintext updates are refused (submit_masked_update)")
        if num_examples > self.job.max_examples_per_update:
            raise TooManyExamples(
                f"the update declares {num_examples} examples; the job allows at most "
                f"{self.job.max_examples_per_update} per update (max_examples_per_update)"
            )
        _check_metrics(metrics)
        with self._lock:
            if self._phase is not RoundPhase.OPEN or self._aggregator is None:
                raise WrongRound(f"update for round {round_index}, but no round is open")
            if round_index != self._round + 1:
                raise WrongRound(f"update for round {round_index}, the open round is {self._round + 1}")
            if owner in self._contributors or owner in self._in_flight:
                raise DuplicateUpdate(f"{owner!r} already contributed to round {round_index}")
            if owner in self._excluded:
                raise UpdateExcluded(
                    f"{owner!r}: its update made the aggregate of round {round_index} non-finite; this round is "
                    "redone without it"
                )
            serial = self._serial
            self._in_flight.add(owner)

        def still_open() -> None:
            if self._serial != serial:
                raise WrongRound(f"round {round_index} closed before this update was complete")

        try:
            with self._pool.slot(still_wanted=still_open) as buffer:
                staged = ingest_stream(
                    crash_mid_stream(chunks, round_index),
                    buffer=buffer,
                    schema=self._schema,
                    max_bytes=self._size_limit,
                    header_limit=HEADER_ALLOWANCE,
                    between_chunks=still_open,
                )
                # Before the fold: a commitment to other bytes would let the receipt claim another inclusion.
                check_commitment(salt=commitment_salt, payload_sha256=staged.payload_sha256, commitment=commitment)
                with self._lock:
                    still_open()
                    assert self._aggregator is not None  # the serial is unchanged, so the round is open
                    self._aggregator.fold_inplace(staged.weights, weight=float(num_examples))
                    self._contributors.add(owner)
                    self._contribution_bounds[owner] = float(num_examples) * staged.max_abs
                    self._update_commitments.append(commitment)
                    self._train_metrics.add(metrics, num_examples)
            return staged.payload_sha256
        finally:
            with self._lock:
                self._in_flight.discard(owner)


def _canonical_model(weights: ModelWeights, received: ModelBytes | None) -> tuple[ModelBytes, ModelWeights]:
    """The model's canonical safetensors bytes and read-only views of them.

    `received` is adopted when it is already canonical (same header bytes as `encode_weights` writes, and the
    same tensor bytes), so the model the owner submitted is held once, not twice.
    """
    if received is not None:
        parts = encode_parts(weights)
        head = b"".join(bytes(p) for p in parts[:2])
        if bytes(received[: len(head)]) == head and len(received) == len(head) + weights.nbytes:
            adopted = decode_weights(memoryview(received).toreadonly())
            if all(np.array_equal(adopted[n], weights[n]) for n in weights):
                return received, adopted
    encoded = encode_weights(weights)
    return encoded, decode_weights(encoded)


def _check_metrics(metrics: Mapping[str, float]) -> None:
    for name, value in metrics.items():
        if not isinstance(value, float | int) or value != value or value in (float("inf"), float("-inf")):
            raise MalformedUpdate(f"metric {name!r} is not a finite number")

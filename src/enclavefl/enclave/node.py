"""The secure worker as a network node: a gRPC server on the attested key and a round loop with deadlines.

    node = AggregatorNode(job=job, tee=backend, port=0).start()   # port 0: the OS picks; see node.port
    ...                                                            # the model owner submits the initial model
    status = node.wait()                                           # until the job finishes or fails
    node.stop()

Each round opens, then closes as soon as every enrolled data owner contributed or at the deadline. With at
least K updates the worker seals the round and signs its receipt; the aggregate is released only once every
contributor (and a majority of the enrolled owners) signed that receipt back, however long that takes (a round
whose signer is away waits; see docs/fault-tolerance.md). With fewer than K, nothing is
released and the job's `on_round_failure` decides: "retry" re-opens the same round number (up to
`max_round_attempts` openings), "stop" ends the job as failed. Imports stay enclave-sized: no torch here.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes, decode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.enclave.identity import NodeIdentity
from enclavefl.enclave.masked_relay import masking_step, run_masked_phases
from enclavefl.enclave.strategies import build_job_strategy, check_job_memory
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import (
    CheckpointError,
    CodecError,
    EnclaveFLError,
    MalformedUpdate,
    MaskingRefused,
    NonFiniteAggregate,
    NotEnoughContributions,
    RoundStateError,
    UnmaskingFailed,
    UpdateRejected,
)
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.binding import compute_report_data
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import INLINE_MODEL_BYTES, JobState, NodeStatus
from enclavefl.transport.grpc_server import NodeServer
from enclavefl.transport.limits import NodeLimits
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

log = logging.getLogger(__name__)

RoundCallback = Callable[[RoundSummary], None]
LOOP_POLL_SECONDS = 0.2  # a bound on condition waits (they are woken by notify_all), not a polling period
ACK_WAIT_SECONDS = 1.0  # bounded: a waiting signer holds one RPC thread
STATUS_WAIT_MAX_SECONDS = 5.0  # the longest a status long poll holds an RPC thread, whatever the caller asks
_ENDED = (JobState.FINISHED, JobState.FAILED)


class AggregatorNode:
    """A SecureWorker served over gRPC/TLS with a round thread. Implements transport.api.NodeBackend."""

    def __init__(
        self,
        *,
        job: JobSpec,
        tee: TeeBackend,
        initial_model: ModelWeights | None = None,
        identity: NodeIdentity | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        staging_slots: int = 1,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_workers: int = 32,
        monotonic: Callable[[], float] = time.monotonic,
        on_round: RoundCallback | None = None,
        checkpoints: CheckpointStore | None = None,
        memory_limit_bytes: int | None = None,
        limits: NodeLimits | None = None,
    ) -> None:
        build_job_strategy(job)  # refuse a rule that releases values of fewer than K updates before serving anyone
        if memory_limit_bytes is not None:  # refuse a job whose rounds cannot fit before serving anyone
            check_job_memory(job, memory_limit_bytes)
        self._job = job
        # a small model travels in the status that opens its round (no copy of a big one is ever made for it)
        self._inline_model = job.model_schema is not None and job.model_schema.nbytes <= INLINE_MODEL_BYTES
        self._job_digest = job.digest()  # hashed once: Attest is open to anyone and must stay cheap
        self.tee = tee
        self._checkpoints = checkpoints
        # Resume before the server exists: the TLS key is the checkpointed identity (one chain, one key).
        resumed = checkpoints.load_latest() if checkpoints is not None else None
        if resumed is not None and identity is not None:
            raise ValueError("a node resuming from a checkpoint uses the checkpointed identity; pass none")
        self.identity = self._resumed_identity(resumed) if resumed is not None else identity or NodeIdentity.generate()
        self._staging_slots = staging_slots
        self._monotonic = monotonic
        self._on_round = on_round
        # One lock, two conditions: `_cond` wakes whoever waits on the status, the receipts or the summaries
        # (rounds opened, sealed, released; the job ended); `_loop_cond` wakes only the round loop, for what only
        # it acts on (an upload landed, a signature came, a masking step). An upload thus wakes one thread, not
        # every long poll, which would look at an unchanged status and wait again.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._loop_cond = threading.Condition(lock)
        self._stop = threading.Event()
        self._worker: SecureWorker | None = None
        self._state = JobState.AWAITING_MODEL
        self._message = "waiting for the model owner's initial model"
        self._summaries: list[RoundSummary] = []
        self._refusals: Counter[str] = Counter()  # refusals made before a worker exists
        # What each data owner was last answered, to know when it is done with an ended job: it saw the end in a
        # status and holds the whole released chain (fetched before or after the end).
        self._told_of_end: set[str] = set()
        self._chain_served: dict[str, int] = {}
        # set once every enrolled data owner is done with the ended job: the process need not linger for them
        self.owners_done = threading.Event()
        self.server = NodeServer(
            self,
            private_key=self._signing_key,
            host=host,
            port=port,
            chunk_bytes=chunk_bytes,
            max_workers=max_workers,
            limits=limits,
        )
        self._thread = threading.Thread(target=self._run_rounds, name="enclavefl-rounds", daemon=True)
        if resumed is not None:
            self._resume(resumed)
        elif initial_model is not None:
            self._install_model(initial_model)

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def job(self) -> JobSpec:
        return self._job

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def certificate_pem(self) -> bytes:
        return self.server.certificate_pem

    @property
    def worker(self) -> SecureWorker | None:
        return self._worker

    @property
    def rejections(self) -> Counter[str]:
        """Every refusal so far by error class: uploads refused by the worker and callers refused at join."""
        total = Counter(self._refusals) + Counter(self.server.authority.refusals)
        if self._worker is not None:
            total += Counter(self._worker.rejections)
        return total

    def start(self) -> AggregatorNode:
        self.server.start()
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> NodeStatus:
        """Block until the job finished or failed (or `timeout` passed); returns the status then."""
        self._thread.join(timeout)
        return self.node_status()

    def stop(self, grace: float = 1.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            self._loop_cond.notify_all()
        self.server.stop(grace)
        if self._thread.is_alive():
            self._thread.join(5.0)

    # --- NodeBackend ----------------------------------------------------------------------------
    def attest(self, nonce: bytes) -> AttestationBundle:
        digest = self._job_digest
        report_data = compute_report_data(tls_spki_sha256=self.identity.spki_sha256, job_digest=digest, nonce=nonce)
        return AttestationBundle(
            evidence=self.tee.evidence(report_data),
            node_spki_sha256=self.identity.spki_sha256,
            job_digest=digest,
            node_public_key_pem=self.identity.public_key_pem,
        )

    def node_status(self, *, data_owner: bool = False) -> NodeStatus:
        """The job's and round's status. For a `data_owner` it also carries what the owner acts on next: the
        receipt to sign while the round is signing, and a small model while the round is open (the model owner
        sees a round only once it is released)."""
        worker = self._worker
        if worker is None:
            return NodeStatus(
                round=0,
                phase=RoundPhase.WAITING,
                contributions=0,
                rounds_total=self._job.rounds,
                global_model_sha256="",
                attempt=0,
                rounds_completed=0,
                job_state=self._state,
                job_message=self._message,
            )
        st, pending, model = worker.status(), None, b""
        if data_owner and st.phase is RoundPhase.SIGNING:
            try:
                pending = worker.pending_receipt()
            except RoundStateError:  # released meanwhile: report the state after the release
                st = worker.status()
        if data_owner and st.phase is RoundPhase.OPEN and self._inline_model:
            try:
                data = worker.global_model_bytes(st.round)
            except UpdateRejected:  # the round moved on meanwhile: the owner downloads it
                data = b""
            model = bytes(data) if len(data) <= INLINE_MODEL_BYTES else b""  # the header counts too
        released, head = worker.released_head()
        return NodeStatus(
            round=st.round,
            phase=st.phase,
            contributions=st.contributions,
            rounds_total=st.rounds_total,
            global_model_sha256=st.global_model_sha256,
            attempt=worker.attempt if st.phase is RoundPhase.OPEN else 0,
            rounds_completed=released,
            job_state=self._state,
            job_message=self._message,
            pending=pending,
            released_head_sha256=head,
            global_model=model,
        )

    def node_status_after(self, seen: NodeStatus | None, *, timeout: float, caller: str = "") -> NodeStatus:
        # Real time on purpose (not the injected monotonic): this bounds how long an RPC thread waits.
        deadline = time.monotonic() + min(max(timeout, 0.0), STATUS_WAIT_MAX_SECONDS)
        with self._cond:  # every change of the status notifies self._cond
            status = self.node_status(data_owner=bool(caller))
            while seen is not None and _round_view(status) == _round_view(seen) and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                status = self.node_status(data_owner=bool(caller))
            if caller and status.job_state in _ENDED:
                self._told_of_end.add(caller)
                self._note_owner_done()
        return status

    def global_model_bytes(self, round_index: int) -> ModelBytes:
        return self._require_worker().global_model_bytes(round_index)

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
        worker = self._worker
        if worker is None:
            self.count_rejection(owner, MalformedUpdate("no round is open: the job has not started"))
        if self._job.masked:  # a masked input: integers modulo 2^bits, not safetensors
            digest = _submit_masked(worker, owner, round_index, chunks, commitment_salt, commitment)
            with self._cond:
                self._loop_cond.notify_all()
            return digest
        digest = worker.submit_update_stream(
            owner=owner,
            round_index=round_index,
            num_examples=num_examples,
            metrics=metrics,
            chunks=chunks,
            commitment_salt=commitment_salt,
            commitment=commitment,
        )
        with self._cond:
            self._loop_cond.notify_all()  # the round may now be complete
        return digest

    def masking_step(self, *, owner: str, round_index: int, step: str, body: bytes) -> tuple[bool, bytes]:
        """One masked-mode step of an authenticated data owner (enclave/masked_relay.py)."""
        try:
            reply = masking_step(self._require_worker(), owner=owner, round_index=round_index, step=step, body=body)
        except UpdateRejected as exc:
            self.count_rejection(owner, exc)
        with self._cond:
            self._loop_cond.notify_all()  # a phase may now be complete
        return reply

    def count_rejection(self, sender: str, exc: UpdateRejected) -> NoReturn:
        worker = self._worker
        if worker is not None:
            worker.count_rejection(sender, exc)
        self._refusals[type(exc).__name__] += 1
        log.warning("refused %s: %s", sender, type(exc).__name__)  # the message may hold the owner's numbers
        raise exc

    def receipts(self, *, caller: str = "") -> tuple[SignedReceipt, ...]:
        chain = self._worker.receipts if self._worker is not None else ()
        if caller:
            with self._cond:
                self._chain_served[caller] = len(chain)
                self._note_owner_done()
        return chain

    def pending_receipt(self) -> SignedReceipt:
        return self._require_worker().pending_receipt()

    def acknowledge(self, ack: Acknowledgement) -> NodeStatus:
        """Count a signature; return the status once its round is released (and the next opened) or after
        ACK_WAIT_SECONDS (a short long-poll: the owner acts on the next round at once, without asking again)."""
        worker = self._require_worker()
        try:
            worker.acknowledge(ack)
        except UpdateRejected as exc:
            self.count_rejection(ack.owner, exc)
        deadline = self._monotonic() + ACK_WAIT_SECONDS
        with self._cond:
            self._loop_cond.notify_all()  # the sealed round may now be releasable
            while not self._stop.is_set() and (
                worker.rounds_completed < ack.round or worker.status().phase is RoundPhase.WAITING
            ):
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            status = self.node_status(data_owner=True)
            if status.rounds_completed >= ack.round:  # it signed a receipt extending the chain it held: it holds it all
                self._chain_served[ack.owner] = max(self._chain_served.get(ack.owner, 0), ack.round)
            if status.job_state in _ENDED:
                self._told_of_end.add(ack.owner)
            self._note_owner_done()
            return status

    def submit_initial_model(self, payload: ModelBytes) -> str:
        try:
            weights = decode_weights(payload)
        except CodecError as exc:
            raise MalformedUpdate(f"initial model: {exc}") from None
        self._install_model(weights, payload)
        return weights.sha256().hex()

    def summaries_after(self, round_index: int, *, timeout: float) -> tuple[tuple[RoundSummary, ...], bool]:
        with self._cond:
            if not self._has_news(round_index):
                self._cond.wait(timeout)
            first = len(self._summaries)  # summaries are in round order: look back from the newest
            while first > 0 and self._summaries[first - 1].round > round_index:
                first -= 1
            return tuple(self._summaries[first:]), self._state in (JobState.FINISHED, JobState.FAILED)

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        """The model released after `round_index` while it is the last released one (the model owner's view)."""
        return self._require_worker().released_model_bytes(round_index)

    def final_model_bytes(self) -> ModelBytes:
        worker = self._require_worker()
        if self._state is not JobState.FINISHED:
            raise RoundStateError(f"the final model is not available: the job is {self._state.value}")
        return worker.global_model_bytes(worker.rounds_completed)

    # --- internals ----------------------------------------------------------------------------
    @property
    def _signing_key(self) -> ec.EllipticCurvePrivateKey:
        return self.identity.private_key

    def _install_model(self, weights: ModelWeights, payload: ModelBytes | None = None) -> None:
        expected = self._job.initial_model_sha256
        actual = weights.sha256().hex()
        if not expected:
            raise MalformedUpdate("the job spec names no initial_model_sha256: refusing an unverifiable model")
        if actual != expected:
            raise MalformedUpdate(f"initial model hash {actual[:16]}… differs from the job's {expected[:16]}…")
        with self._cond:
            if self._worker is not None:
                # The job's own model again (its hash was just checked): a model owner re-running `job submit`
                # against a node that resumed the job. Nothing to change; the job goes on from its checkpoint.
                return
            worker = SecureWorker(
                job=self._job,
                initial_model=weights,
                tee=self.tee,
                identity=self.identity,
                staging_slots=self._staging_slots,
                checkpoint_sink=self._sink,
                acknowledgement_sink=self._keep_acknowledgements,
                initial_model_bytes=payload,
            )
            if self._checkpoints is not None:  # round 0: a restart needs neither the model owner nor a new key
                self._checkpoints.save(worker.to_checkpoint())
            self._worker = worker
            self._state, self._message = JobState.RUNNING, "initial model accepted"
            self._cond.notify_all()

    @property
    def _sink(self) -> Callable[[NodeCheckpoint], object] | None:
        return self._checkpoints.save if self._checkpoints is not None else None

    def _keep_acknowledgements(self, receipt: SignedReceipt, acks: tuple[Acknowledgement, ...]) -> None:
        if self._checkpoints is None:
            return
        try:
            self._checkpoints.save_acknowledgements(receipt, acks)
        except OSError as exc:  # only a convenience for restarts: the owners can always be asked again
            log.warning("round %d: cannot keep the owners' signatures: %s", receipt.receipt.round, exc)

    @staticmethod
    def _resumed_identity(checkpoint: NodeCheckpoint) -> NodeIdentity:
        try:
            return NodeIdentity.from_private_der(checkpoint.identity_key_der)
        except (ValueError, TypeError, EnclaveFLError) as exc:
            raise CheckpointError(
                f"checkpoint of round {checkpoint.rounds_completed}: unusable node key: {exc}"
            ) from None

    def _resume(self, checkpoint: NodeCheckpoint) -> None:
        """Continue after round `checkpoint.rounds_completed`; an open round at the crash is redone from its start."""
        try:
            worker = SecureWorker.from_checkpoint(
                checkpoint,
                job=self._job,
                tee=self.tee,
                staging_slots=self._staging_slots,
                checkpoint_sink=self._sink,
                acknowledgement_sink=self._keep_acknowledgements,
            )
        except CheckpointError:
            raise
        except EnclaveFLError as exc:
            raise CheckpointError(
                f"checkpoint of round {checkpoint.rounds_completed} does not resume: {type(exc).__name__}: {exc}"
            ) from None
        if checkpoint.pending is not None and self._checkpoints is not None:  # sealed, unreleased: kept signatures
            kept = worker.restore_acknowledgements(self._checkpoints.load_acknowledgements(worker.pending_receipt()))
            log.warning(
                "round %d is sealed, not released; %d kept signature(s) verified", checkpoint.rounds_completed, kept
            )
        with self._cond:
            self._worker = worker
            self._state = JobState.RUNNING
            self._message = f"resumed from the sealed checkpoint of round {checkpoint.rounds_completed}"
            self._cond.notify_all()
        log.warning("node %s", self._message)

    def _require_worker(self) -> SecureWorker:
        if self._worker is None:
            raise RoundStateError("the node is waiting for the model owner's initial model")
        return self._worker

    def _has_news(self, round_index: int) -> bool:
        ended = self._state in (JobState.FINISHED, JobState.FAILED)
        return ended or bool(self._summaries and self._summaries[-1].round > round_index)

    def _run_rounds(self) -> None:
        with self._cond:
            while self._worker is None and not self._stop.is_set():
                self._cond.wait(LOOP_POLL_SECONDS)
        worker = self._worker
        if worker is None:
            return
        enrolled = len(self._job.data_owners) or math.inf
        while worker.rounds_completed < self._job.rounds and not self._stop.is_set():
            if worker.status().phase is not RoundPhase.SIGNING:  # else: resumed with a sealed round
                if not self._run_open_round(worker, enrolled):
                    return
                continue
            if not self._await_signatures(worker):
                return
            summary = worker.release_round()
            with self._cond:
                self._summaries.append(summary)
                self._cond.notify_all()
            if self._on_round is not None:
                self._on_round(summary)
        if not self._stop.is_set():
            self._end(JobState.FINISHED, f"all {self._job.rounds} rounds completed")

    def _run_open_round(self, worker: SecureWorker, enrolled: float) -> bool:
        """Open a round, wait for uploads or the deadline, seal it; False when the loop must end."""
        round_index = worker.open_round()
        opened = self._monotonic()
        deadline = opened + self._job.round_deadline_seconds
        with self._cond:
            self._cond.notify_all()  # signers waiting in acknowledge() go on to this round
            while (
                not self._job.masked  # masked mode: run_masked_phases below keeps the round's clock
                and worker.status().contributions < enrolled
                and self._monotonic() < deadline
                and not self._stop.is_set()
            ):
                self._loop_cond.wait(min(LOOP_POLL_SECONDS, max(0.0, deadline - self._monotonic())))
        try:
            if self._job.masked:
                run_masked_phases(
                    worker,
                    round_index=round_index,
                    opened=opened,
                    duration=self._job.round_deadline_seconds,
                    wait=self._wait_briefly,
                    now=self._monotonic,
                    stopped=self._stop.is_set,
                )
            if self._stop.is_set():
                return False
            worker.close_round()
            self._notify()  # sealed: owners waiting on the status go on to sign
        except (CheckpointError, OSError) as exc:  # not sealed, so not released: stop rather than lose it
            self.server.cancel_active_uploads()
            self._end(JobState.FAILED, f"round {round_index}: cannot write the sealed checkpoint: {exc}")
            return False
        except (NotEnoughContributions, NonFiniteAggregate, UnmaskingFailed) as exc:  # nothing sealed: may be redone
            self.server.cancel_active_uploads()
            if self._job.on_round_failure == "stop" or worker.attempt >= self._job.max_round_attempts:
                self._end(JobState.FAILED, f"round {round_index} failed: {exc}")
                return False
            log.warning("round %d failed (%s); re-opening it (attempt %d)", round_index, exc, worker.attempt + 1)
            self._notify()
            return True
        self.server.cancel_active_uploads()  # anything still streaming is for a closed round
        return True

    def _wait_briefly(self, seconds: float) -> None:
        with self._cond:
            self._loop_cond.wait(min(LOOP_POLL_SECONDS, seconds))

    def _await_signatures(self, worker: SecureWorker) -> bool:
        """Wait, without a deadline, until the sealed round may be released; False when the node stops.

        No deadline on purpose: releasing without a contributor's signature, or re-running the round with a set
        that includes one who signed, is exactly what the two phases forbid. A signer who never comes back stops
        the job here (docs/fault-tolerance.md); the status says how many signatures are missing.
        """
        round_index = worker.status().round
        with self._cond:
            before = self._message
            while (missing := worker.signatures_missing()) > 0 and not self._stop.is_set():
                waiting = f"round {round_index} sealed; waiting for {missing} owner signature(s) to release it"
                self._message = waiting  # shown by the next status; long polls wait for the release itself
                self._loop_cond.wait(LOOP_POLL_SECONDS)
            self._message = before
        return not self._stop.is_set()

    def _note_owner_done(self) -> None:
        """Set owners_done once every enrolled owner saw the end and holds the whole chain (under _cond)."""
        worker = self._worker
        if self._state not in _ENDED or worker is None:
            return
        done = {name for name in self._told_of_end if self._chain_served.get(name) == worker.rounds_completed}
        if done >= {owner.name for owner in self._job.data_owners}:
            self.owners_done.set()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
            self._loop_cond.notify_all()

    def _end(self, state: JobState, message: str) -> None:
        with self._cond:
            self._state, self._message = state, message
            self._cond.notify_all()
            self._loop_cond.notify_all()
        log.info("job %s: %s", state.value, message)


def _submit_masked(
    worker: SecureWorker,
    owner: str,
    round_index: int,
    chunks: Iterable[bytes | memoryview],
    salt: bytes,
    commitment: bytes,
) -> bytes:
    """Read a masked input (at most the expected size, then one byte more to detect an overlong one) and fold it."""
    try:
        limit = worker.masked_payload_bytes(round_index) + 1
    except UpdateRejected as exc:  # no masked round open
        worker.count_rejection(owner, exc)
    parts: list[bytes] = []
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            worker.count_rejection(owner, MaskingRefused(f"a masked input longer than {limit - 1} bytes"))
        parts.append(bytes(chunk))
    payload = b"".join(parts)
    worker.submit_masked_update(
        owner=owner, round_index=round_index, payload=payload, commitment_salt=salt, commitment=commitment
    )
    return hashlib.sha256(payload).digest()


def _round_view(status: NodeStatus) -> tuple[object, ...]:
    """What a waiting data owner acts on: the round, its phase and attempt, the rounds released, the job's state.
    Contribution counts and messages change too, but wake nobody: an owner that uploaded waits for the seal."""
    return (status.round, status.phase, status.attempt, status.rounds_completed, status.job_state)

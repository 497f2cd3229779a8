"""The node: a secure worker, its round loop, and the one service every transport serves.

    node = AggregatorNode(job=job, tee=backend)           # transport-agnostic: simulation and deployment alike
    node.serve_grpc(port=0).start()                        # gRPC over TLS on the attested key; see node.address
    client = InMemoryClient(node, caller="alice")          # ... or in this process (transport/inmemory.py)
    status = node.wait()                                   # until the job finishes or fails
    node.stop()

The node implements transport/service.py's NodeService: the gRPC server and the in-memory transport call the same
methods, so a simulation runs exactly what a deployment runs. The rounds themselves (deadlines, attempts,
two-phase close, masked phases) are enclave/rounds.py's. Imports stay enclave-sized: no torch here.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import NoReturn

from enclavefl.aggregation import AggregationStrategy
from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes, decode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.core.model_source import ModelSource
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import IncomingUpdate
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore
from enclavefl.enclave.identity import NodeIdentity, attest
from enclavefl.enclave.lifecycle import NodeLifecycle
from enclavefl.enclave.rounds import ENDED, NodeSignals, RoundCallback, RoundLoop
from enclavefl.enclave.strategies import build_job_strategy, check_job_memory
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CodecError, MalformedUpdate, MaskingRefused, RoundStateError, UpdateRejected
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport.api import INLINE_MODEL_BYTES, JobState, NodeStatus
from enclavefl.transport.grpc_server import DEFAULT_WORK_THREADS, NodeServer
from enclavefl.transport.limits import NodeLimits
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

log = logging.getLogger(__name__)


class AggregatorNode(NodeLifecycle):
    """A SecureWorker with its round loop, served by any transport. Implements transport.service.NodeService."""

    def __init__(
        self,
        *,
        job: JobSpec,
        tee: TeeBackend,
        initial_model: ModelWeights | None = None,
        identity: NodeIdentity | None = None,
        staging_slots: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
        on_round: RoundCallback | None = None,
        checkpoints: CheckpointStore | None = None,
        memory_limit_bytes: int | None = None,
        strategy: AggregationStrategy | None = None,
    ) -> None:
        """`strategy`: an injected strategy object (tests, reproducible demos); by default the job's own."""
        build_job_strategy(job)  # refuse a rule that releases values of fewer than K updates before serving anyone
        if memory_limit_bytes is not None:  # refuse a job whose rounds cannot fit before serving anyone
            check_job_memory(job, memory_limit_bytes)
        self._job_digest = job.digest()  # hashed once: Attest is open to anyone and must stay cheap
        # a small model travels in the status that opens its round (no copy of a big one is ever made for it)
        self._inline_model = job.model_schema is not None and job.model_schema.nbytes <= INLINE_MODEL_BYTES
        self.tee = tee
        self.server: NodeServer | None = None
        self._round_closed_listeners: list[Callable[[], object]] = []
        self._refusals: Counter[str] = Counter()  # refusals made before a worker exists
        signals = NodeSignals()
        loop = RoundLoop(
            job=job, signals=signals, monotonic=monotonic, on_round=on_round, on_round_closed=self._round_closed
        )
        super().__init__(
            job=job,
            identity=identity,
            checkpoints=checkpoints,
            staging_slots=staging_slots,
            strategy=strategy,
            signals=signals,
            loop=loop,
            initial_model=initial_model,
        )

    # --- transports and lifecycle ----------------------------------------------------------------
    def serve_grpc(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_workers: int = DEFAULT_WORK_THREADS,
        limits: NodeLimits | None = None,
    ) -> AggregatorNode:
        """Serve this node over gRPC with TLS on its attested key (started by `start`); see `address`.

        `max_workers`: threads for the node's work (status reads, signature checks, quotes); calls that wait hold
        none, so the server's threads stay `max_workers` + 1 + the staging slots whatever the number of owners.
        """
        if self.server is not None:
            raise RoundStateError(f"the node already serves gRPC on {self.server.address}")
        self.server = NodeServer(
            self,
            private_key=self.identity.private_key,
            host=host,
            port=port,
            chunk_bytes=chunk_bytes,
            work_threads=max_workers,
            ingest_slots=self._staging_slots,
            limits=limits,
        )
        self._round_closed_listeners.append(self.server.cancel_active_uploads)
        return self

    @property
    def job(self) -> JobSpec:
        return self._job

    @property
    def channel_spki_sha256(self) -> bytes:
        return self.identity.spki_sha256

    @property
    def port(self) -> int:
        return self._grpc().port

    @property
    def address(self) -> str:
        return self._grpc().address

    @property
    def certificate_pem(self) -> bytes:
        return self._grpc().certificate_pem

    @property
    def rejections(self) -> Counter[str]:
        """Every refusal so far by error class: uploads refused by the worker and callers refused at join."""
        total = Counter(self._refusals)
        if self.server is not None:
            total += Counter(self.server.authority.refusals)
        if self._worker is not None:
            total += Counter(self._worker.rejections)
        return total

    def start(self) -> AggregatorNode:
        if self.server is not None:
            self.server.start()
        self._loop.start()
        return self

    def wait(self, timeout: float | None = None) -> NodeStatus:
        """Block until the job finished or failed (or `timeout` passed); returns the status then."""
        self._loop.join(timeout)
        return self.node_status()

    def stop(self, grace: float = 1.0) -> None:
        self._signals.stop.set()
        self._signals.notify()
        if self.server is not None:
            self.server.stop(grace)
        if self._loop.is_alive():
            self._loop.join(5.0)

    @property
    def stopped(self) -> bool:
        return self._signals.stop.is_set()

    # --- NodeService ------------------------------------------------------------------------------
    def attest(self, nonce: bytes) -> AttestationBundle:
        bundle = attest(self.identity, self.tee, job_digest=self._job_digest, nonce=nonce)
        # unauthenticated by design (a party attests before it joins): who asked is not known here
        log.info(
            "attested: %s quote for a fresh nonce, bound to job %s", bundle.evidence.tee, self._job_digest.hex()[:16]
        )
        return bundle

    def node_status(self, *, data_owner: bool = False, caller: str = "") -> NodeStatus:
        """The job's and round's status. For a `data_owner` it also carries what the owner acts on next: the
        receipt to sign while the round is signing, a small model while the round is open (the model owner
        sees a round only once it is released), and with cohorts `caller`'s own membership and token. A data owner
        (`caller`) answered with the ended job is noted (owners_done)."""
        loop, worker = self._loop, self._worker
        if worker is None:
            return NodeStatus(
                round=0,
                phase=RoundPhase.WAITING,
                contributions=0,
                rounds_total=self._job.rounds,
                global_model_sha256="",
                attempt=0,
                rounds_completed=0,
                job_state=loop.state,
                job_message=loop.message,
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
        outside, token = False, b""
        if caller and worker.cohorts is not None and st.phase in (RoundPhase.OPEN, RoundPhase.SIGNING):
            member, token = worker.cohorts.claim(st.round, caller)  # the caller's own: never another owner's
            outside = not member
        status = NodeStatus(
            round=st.round,
            phase=st.phase,
            contributions=st.contributions,
            rounds_total=st.rounds_total,
            global_model_sha256=st.global_model_sha256,
            attempt=worker.attempt if st.phase is RoundPhase.OPEN else 0,
            rounds_completed=released,
            job_state=loop.state,
            job_message=loop.message,
            pending=pending,
            released_head_sha256=head,
            global_model=model,
            outside_cohort=outside,
            cohort_token=token,
        )
        if caller and status.job_state in ENDED:
            self.note_told_of_end(caller)
        return status

    def global_model_bytes(self, round_index: int) -> ModelSource:
        return self._require_worker().global_model_bytes(round_index)

    def submit_update(self, update: IncomingUpdate) -> bytes:
        worker = self._worker
        if worker is None:
            self.count_rejection(update.header.owner, MalformedUpdate("no round is open: the job has not started"))
        # a masked input (integers modulo 2^bits), or a plaintext update (safetensors)
        digest = worker.masked.submit(update) if worker.masked is not None else worker.submit_update(update)
        self._signals.poke_loop()  # the round (or its upload phase) may now be complete
        return digest

    def masking_step(self, *, owner: str, round_index: int, step: str, body: bytes) -> tuple[bool, bytes]:
        """One masked-mode step of an authenticated data owner (enclave/masked)."""
        worker = self._require_worker()
        try:
            if worker.masked is None:
                raise MaskingRefused(f"job {self._job.name!r} is not masked")
            reply = worker.masked.step(owner, round_index, step, body)
        except UpdateRejected as exc:
            self.count_rejection(owner, exc)
        self._signals.poke_loop()  # a phase may now be complete
        return reply

    def count_rejection(self, sender: str, exc: UpdateRejected) -> NoReturn:
        """Counted and logged once: by the worker, which keeps each round's refusals for its summary (here only
        before a worker exists)."""
        worker = self._worker
        if worker is not None:
            worker.count_rejection(sender, exc)  # counts, logs and raises
        self._refusals[type(exc).__name__] += 1
        log.warning("an update from %r was refused: %s", sender, type(exc).__name__)  # the class only, as the worker
        raise exc

    def receipts(self, *, caller: str = "") -> tuple[SignedReceipt, ...]:
        chain = self._worker.receipts if self._worker is not None else ()
        if caller:
            self.note_chain_served(caller, len(chain))
        return chain

    def pending_receipt(self) -> SignedReceipt:
        return self._require_worker().pending_receipt()

    def acknowledge(self, ack: Acknowledgement) -> NodeStatus:
        """Count a signature and answer with the status now; a transport that lets the signer wait for the release
        and the next opening waits without the node (transport/waiting.py, transport/inmemory.py), then asks
        `acknowledge_settled`."""
        worker = self._require_worker()
        try:
            worker.acknowledge(ack)
        except UpdateRejected as exc:
            self.count_rejection(ack.owner, exc)
        with self._signals.cond:
            self._signals.loop_cond.notify_all()  # the sealed round may now be releasable
            return self.acknowledge_settled(ack)

    def acknowledge_settled(self, ack: Acknowledgement) -> NodeStatus:
        """The status a signer of `ack` is answered with now."""
        with self._signals.cond:
            status = self.node_status(data_owner=True, caller=ack.owner)
            # it signed a receipt extending the chain it held: it holds the whole chain up to that round
            self.note_acknowledged(ack.owner, ack.round, status)
            return status

    def on_status_change(self, listener: Callable[[], object]) -> None:
        self._signals.on_change(listener)

    def submit_initial_model(self, payload: ModelBytes) -> str:
        try:
            weights = decode_weights(payload)
        except CodecError as exc:
            raise MalformedUpdate(f"initial model: {exc}") from None
        self.install_model(weights, payload)
        return self._job.initial_model_sha256  # install_model refuses a model of another hash

    def summaries_after(self, round_index: int) -> tuple[tuple[RoundSummary, ...], bool]:
        loop = self._loop
        with self._signals.cond:
            first = len(loop.summaries)  # summaries are in round order: look back from the newest
            while first > 0 and loop.summaries[first - 1].round > round_index:
                first -= 1
            return tuple(loop.summaries[first:]), loop.ended

    def released_model_bytes(self, round_index: int) -> ModelSource:
        """The model released after `round_index` while it is the last released one (the model owner's view)."""
        return self._require_worker().released_model_bytes(round_index)

    def final_model_bytes(self) -> ModelSource:
        worker = self._require_worker()
        if self._loop.state is not JobState.FINISHED:
            raise RoundStateError(f"the final model is not available: the job is {self._loop.state.value}")
        return worker.global_model_bytes(worker.rounds_completed)

    # --- internals ---------------------------------------------------------------------------------
    def _grpc(self) -> NodeServer:
        if self.server is None:
            raise RoundStateError("this node serves no gRPC (call serve_grpc before start)")
        return self.server

    def _round_closed(self) -> None:
        for listener in self._round_closed_listeners:
            listener()

    def _require_worker(self) -> SecureWorker:
        if self._worker is None:
            raise RoundStateError("the node is waiting for the model owner's initial model")
        return self._worker

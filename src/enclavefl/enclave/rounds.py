"""The node's round loop: open, wait for uploads or the deadline, seal, wait for signatures, release; repeat.

    loop = RoundLoop(job=job, signals=signals, monotonic=time.monotonic, on_round=print, on_round_closed=cancel)
    loop.attach(worker, "initial model accepted")    # the loop starts its first round once a worker exists
    loop.start(); loop.join()                          # until the job finished or failed

Each round opens, then closes as soon as every enrolled data owner (with cohorts: every member of the round's
cohort, drawn inside the enclave) contributed or at the deadline. With at least K updates the worker seals the
round and signs its receipt; the aggregate is released only once every contributor (and a majority of the
enrolled owners, or of the round's cohort) signed that receipt back, however long that takes (a round whose signer
is away waits; see docs/fault-tolerance.md). With fewer than K, nothing is released and the job's
`on_round_failure` decides: "retry" re-opens the same round number (up to `max_round_attempts` openings), "stop"
ends the job as failed. A masked round whose sum was unmasked and then failed its bound is lost: the job ends
(MaskedRoundLost; a round's inputs are never unmasked twice). The loop knows no transport: `on_round_closed` tells
them a round closed.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundPhase, RoundSummary
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import (
    CheckpointError,
    EnclaveFLError,
    MaskedRoundLost,
    NonFiniteAggregate,
    NotEnoughContributions,
    UnmaskingFailed,
)
from enclavefl.transport.api import JobState

log = logging.getLogger(__name__)

RoundCallback = Callable[[RoundSummary], None]
LOOP_POLL_SECONDS = 0.2  # a bound on condition waits (they are woken by notify_all), not a polling period
ENDED = (JobState.FINISHED, JobState.FAILED)


class NodeSignals:
    """One lock, two conditions and a stop flag, shared by the node's service calls and its round loop.

    `cond` tells whoever waits on the status, the receipts or the summaries (rounds opened, sealed, released; the
    job ended): the transports' waiting calls, through its listeners; `loop_cond` wakes only the round loop, for
    what only it acts on (an upload landed, a signature came, a masking step). An upload thus wakes one thread, not
    every long poll, which would look at an unchanged status and wait again.
    """

    def __init__(self) -> None:
        lock = threading.RLock()
        self.cond = _TellingCondition(lock)
        self.loop_cond = threading.Condition(lock)
        self.stop = threading.Event()

    def on_change(self, listener: Callable[[], object]) -> None:
        """Call `listener` (under the lock; it must not block) whenever `cond` wakes its waiters: the asynchronous
        server parks its waiting calls on an event loop rather than a thread (transport/waiting.py)."""
        self.cond.listeners.append(listener)

    def notify(self) -> None:
        """Wake everyone: the status changed."""
        with self.cond:
            self.cond.notify_all()
            self.loop_cond.notify_all()

    def poke_loop(self) -> None:
        """Wake the round loop only: something it waits for may have happened."""
        with self.cond:
            self.loop_cond.notify_all()


class _TellingCondition(threading.Condition):
    """A condition whose notify_all also tells listeners that are not threads (an event loop's waiting calls)."""

    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self.listeners: list[Callable[[], object]] = []

    def notify_all(self) -> None:
        super().notify_all()
        for listener in self.listeners:
            listener()


class RoundLoop:
    """The round thread and the job's state (awaiting the model, running, finished, failed) it moves through."""

    def __init__(
        self,
        *,
        job: JobSpec,
        signals: NodeSignals,
        monotonic: Callable[[], float],
        on_round: RoundCallback | None = None,
        on_round_closed: Callable[[], object] = lambda: None,
    ) -> None:
        self._job = job
        self._signals = signals
        self._monotonic = monotonic
        self._on_round = on_round
        self._on_round_closed = on_round_closed  # transports cancel what still streams into the closed round
        self.worker: SecureWorker | None = None
        self.state = JobState.AWAITING_MODEL
        self.message = "waiting for the model owner's initial model"
        self.summaries: list[RoundSummary] = []  # released rounds, in order
        self._thread = threading.Thread(target=self._run, name="enclavefl-rounds", daemon=True)

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def attach(self, worker: SecureWorker, message: str) -> None:
        """The job runs from here: `worker` holds its state (a new job's, or a resumed one's)."""
        with self._signals.cond:
            self.worker = worker
            self.state, self.message = JobState.RUNNING, message
            self._signals.cond.notify_all()

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        signals = self._signals
        with signals.cond:
            while self.worker is None and not signals.stop.is_set():
                signals.cond.wait(LOOP_POLL_SECONDS)
        worker = self.worker
        if worker is None:
            return
        # a round closes early once everyone who may contribute did: its cohort, or every enrolled owner
        enrolled = self._job.cohort_size or len(self._job.data_owners) or math.inf
        while worker.rounds_completed < self._job.rounds and not signals.stop.is_set():
            if worker.status().phase is not RoundPhase.SIGNING:  # else: resumed with a sealed round
                if not self._run_open_round(worker, enrolled):
                    return
                continue
            if not self._await_signatures(worker):
                return
            summary = worker.release_round()
            with signals.cond:
                self.summaries.append(summary)
                signals.cond.notify_all()
            if self._on_round is not None:
                self._on_round(summary)
        if not signals.stop.is_set():
            self._end(JobState.FINISHED, f"all {self._job.rounds} rounds completed")

    def _run_open_round(self, worker: SecureWorker, enrolled: float) -> bool:
        """Open a round, wait for uploads or the deadline, seal it; False when the loop must end."""
        signals = self._signals
        try:
            round_index = worker.open_round()
        except EnclaveFLError as exc:  # e.g. the privacy budget would be exceeded: nothing opens, the job ends
            self._end(JobState.FAILED, f"round {worker.rounds_completed + 1} cannot open: {exc}")
            return False
        opened = self._monotonic()
        deadline = opened + self._job.round_deadline_seconds
        with signals.cond:
            signals.cond.notify_all()  # signers waiting in acknowledge() go on to this round
            while (
                worker.masked is None  # masked mode: its phases below keep the round's clock
                and worker.status().contributions < enrolled
                and self._monotonic() < deadline
                and not signals.stop.is_set()
            ):
                signals.loop_cond.wait(min(LOOP_POLL_SECONDS, max(0.0, deadline - self._monotonic())))
        try:
            if worker.masked is not None:
                worker.masked.run_phases(
                    round_index,
                    opened=opened,
                    duration=self._job.round_deadline_seconds,
                    wait=self._wait_briefly,
                    now=self._monotonic,
                    stopped=signals.stop.is_set,
                )
            if signals.stop.is_set():
                return False
            worker.close_round()
            signals.notify()  # sealed: owners waiting on the status go on to sign
        except (CheckpointError, OSError) as exc:  # not sealed, so not released: stop rather than lose it
            self._on_round_closed()
            # Not final: nothing of this round left, and a node restarted on the same state resumes after the last
            # sealed round (a full disk is the usual cause; the operator frees space and runs the node again).
            self._end(
                JobState.FAILED,
                f"round {round_index}: cannot write the sealed checkpoint: {exc}; nothing of round {round_index} was "
                f"released and the job can be resumed: free space (or fix the state directory) and start the node "
                f"again on the same state, it resumes after round {round_index - 1}",
            )
            return False
        except MaskedRoundLost as exc:  # its sum was unmasked: a second sum of it would leak (enclave/masked)
            self._on_round_closed()
            self._end(JobState.FAILED, f"round {round_index} lost: {exc}")
            return False
        except (NotEnoughContributions, NonFiniteAggregate, UnmaskingFailed) as exc:  # nothing sealed: redo it?
            self._on_round_closed()
            if self._job.on_round_failure == "stop" or worker.attempt >= self._job.max_round_attempts:
                self._end(JobState.FAILED, f"round {round_index} failed: {exc}")
                return False
            log.warning("round %d failed (%s); re-opening it (attempt %d)", round_index, exc, worker.attempt + 1)
            signals.notify()
            return True
        self._on_round_closed()  # anything still streaming is for a closed round
        return True

    def _wait_briefly(self, seconds: float) -> None:
        with self._signals.cond:
            self._signals.loop_cond.wait(min(LOOP_POLL_SECONDS, seconds))

    def _await_signatures(self, worker: SecureWorker) -> bool:
        """Wait, without a deadline, until the sealed round may be released; False when the node stops.

        No deadline on purpose: releasing without a contributor's signature, or re-running the round with a set
        that includes one who signed, is exactly what the two phases forbid. A signer who never comes back stops
        the job here (docs/fault-tolerance.md); the status says how many signatures are missing.
        """
        signals = self._signals
        round_index = worker.status().round
        with signals.cond:
            before = self.message
            while (missing := worker.signatures_missing()) > 0 and not signals.stop.is_set():
                # shown by the next status; long polls wait for the release itself
                self.message = f"round {round_index} sealed; waiting for {missing} owner signature(s) to release it"
                signals.loop_cond.wait(LOOP_POLL_SECONDS)
            self.message = before
        return not signals.stop.is_set()

    def _end(self, state: JobState, message: str) -> None:
        with self._signals.cond:
            self.state, self.message = state, message
            self._signals.cond.notify_all()
            self._signals.loop_cond.notify_all()
        log.info("job %s: %s", state.value, message)

"""Federated evaluation: owners evaluate a released model on held-out data; only means over >= K owners leave.

    worker.evaluation.submit("alice", round=3, num_examples=40, metrics={"loss": 0.2, "accuracy": 0.9})
    worker.evaluation.close()            # {"accuracy": ..., "loss": ...}: example-weighted means, once per round

Each data owner evaluates the global model released after a round on its own held-out data and reports its
example count and metrics. Only example-weighted means over at least K owners leave, once per round (a second
release over a different set of owners would let a difference reveal one owner's numbers). In-process only (the
digits demo): no RPC serves it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from enclavefl.core.job import JobSpec
from enclavefl.enclave.metrics import check_metrics
from enclavefl.errors import (
    DuplicateUpdate,
    MalformedUpdate,
    NotEnoughContributions,
    NotEnrolled,
    RoundStateError,
    WrongRound,
)


@dataclass(slots=True, kw_only=True)
class EvaluationTally:
    """One round's evaluation reports (federated evaluation); the caller holds the worker's lock."""

    round: int
    names: frozenset[str]
    owners: set[str] = field(default_factory=set)
    sums: dict[str, float] = field(default_factory=dict)
    examples: int = 0
    released: bool = False

    def add(self, owner: str, num_examples: int, metrics: Mapping[str, float]) -> None:
        if self.released:
            raise RoundStateError(f"the evaluation of round {self.round} was already released")
        if owner in self.owners:
            raise DuplicateUpdate(f"{owner!r} already reported its evaluation of round {self.round}")
        if frozenset(metrics) != self.names:
            # a metric only some owners report would be released over fewer than K of them
            raise MalformedUpdate(f"evaluation metrics must be exactly {sorted(self.names)}, got {sorted(metrics)}")
        self.owners.add(owner)
        self.examples += num_examples
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * num_examples

    def release(self) -> dict[str, float]:
        if self.released:
            raise RoundStateError(f"the evaluation of round {self.round} was already released")
        self.released = True
        return {name: self.sums[name] / self.examples for name in sorted(self.sums)}


class FederatedEvaluation:
    """The worker's federated-evaluation tally: one round's reports at a time, released once."""

    def __init__(self, *, job: JobSpec, lock: threading.Lock, released_round: Callable[[], int]) -> None:
        self._job = job
        self._lock = lock  # the worker's: a report and a release see one released round
        self._released_round = released_round  # read under the lock
        self._enrolled = {o.name for o in job.data_owners}
        self._tally: EvaluationTally | None = None

    def submit(self, owner: str, round: int, num_examples: int, metrics: Mapping[str, float]) -> None:
        """Record `owner`'s metrics on the global model released after `round` (0: the initial model)."""
        if self._enrolled and owner not in self._enrolled:
            raise NotEnrolled(f"{owner!r} is not enrolled in job {self._job.name!r}")
        if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
            raise MalformedUpdate(f"num_examples must be an integer >= 1, got {num_examples!r}")
        if not metrics:
            raise MalformedUpdate("an evaluation must report at least one metric")
        check_metrics(metrics)
        with self._lock:
            released = self._released_round()
            if round != released:
                raise WrongRound(f"evaluation of round {round}, the released global model is round {released}")
            tally = self._tally
            if tally is None or tally.round != round:
                tally = self._tally = EvaluationTally(round=round, names=frozenset(metrics))
            tally.add(owner, num_examples, metrics)

    def close(self) -> Mapping[str, float]:
        """Example-weighted mean of each metric; NotEnoughContributions (nothing released) below K owners.

        In a DP job nothing is released (an empty mapping), for the reason training metrics are withheld there
        (metrics.release_training_metrics): self-reported numbers of unbounded sensitivity, with no epsilon."""
        with self._lock:
            released = self._released_round()
            tally = self._tally
            reported = len(tally.owners) if tally is not None and tally.round == released else 0
            if tally is None or reported < self._job.min_contributions:
                raise NotEnoughContributions(
                    f"evaluation of round {released}: {reported} owner(s) reported, the job requires at least "
                    f"{self._job.min_contributions}; nothing is released"
                )
            means = tally.release()  # once per round, in a DP job too: a later call finds the round closed
            return {} if self._job.dp is not None else means

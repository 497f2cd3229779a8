"""One open round inside the worker: its aggregator and what it took in so far, in one object.

    state = OpenRound(index=3, attempt=1, aggregator=strategy.start_round(global_model))
    state.admit(owner, excluded=set())       # an upload starts: one per owner and round
    state.check_open()                       # an upload in flight asks this before each chunk and before its fold
    state.record(owner, commitment, ...)     # a folded update: counted, listed in the receipt

The worker holds at most one; sealing or dropping the round marks it closed, so an upload still streaming into it
is refused (WrongRound) instead of landing in the next round. Not thread-safe: the worker's lock guards it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from enclavefl.aggregation import RoundAggregator
from enclavefl.enclave.metrics import TrainingMetricsTally
from enclavefl.errors import DuplicateUpdate, NotInCohort, UpdateExcluded, WrongRound

if TYPE_CHECKING:
    from enclavefl.enclave.cohort import RoundCohort


@dataclass(slots=True, kw_only=True)
class OpenRound:
    """The state of round `index` (its `attempt`-th opening) while it accepts updates."""

    index: int
    attempt: int
    aggregator: RoundAggregator
    # The next global model's safetensors buffer when the aggregator accumulates inside it (plain FedAvg): its
    # tensors are the accumulators, so sealing copies nothing (docs/performance.md, "Node memory").
    next_global_bytes: bytearray | None = None
    contributors: set[str] = field(default_factory=set)
    in_flight: set[str] = field(default_factory=set)
    commitments: list[bytes] = field(default_factory=list)  # what the receipt lists: never a plain payload hash
    train_metrics: TrainingMetricsTally = field(default_factory=TrainingMetricsTally)
    contribution_bounds: dict[str, float] = field(default_factory=dict)  # weight x max|value| of each fold
    closed: bool = False
    cohort: RoundCohort | None = None  # the owners drawn for this round (None: every enrolled owner)

    def check_open(self) -> None:
        """WrongRound once the round was sealed or dropped (an upload still in flight is for a closed round)."""
        if self.closed:
            raise WrongRound(f"round {self.index} closed before this update was complete")

    def admit(self, owner: str, *, excluded: Collection[str]) -> None:
        """Take `owner`'s upload in (in flight until folded): DuplicateUpdate for a second one of this round,
        UpdateExcluded for an owner whose update made this round number's aggregate non-finite, NotInCohort for an
        owner the enclave did not draw for this round."""
        if self.cohort is not None and owner not in self.cohort.members:
            raise NotInCohort(f"{owner!r} is not in the cohort the enclave drew for round {self.index}")
        if owner in self.contributors or owner in self.in_flight:
            raise DuplicateUpdate(f"{owner!r} already contributed to round {self.index}")
        if owner in excluded:
            raise UpdateExcluded(
                f"{owner!r}: its update made the aggregate of round {self.index} non-finite; this round is redone "
                "without it"
            )
        self.in_flight.add(owner)

    def record(
        self,
        owner: str,
        commitment: bytes,
        *,
        num_examples: int = 0,
        metrics: Mapping[str, float] | None = None,
        bound: float | None = None,
    ) -> None:
        """Count a folded update: its owner, its commitment, its metrics and its contribution bound."""
        self.contributors.add(owner)
        self.commitments.append(commitment)
        if metrics:
            self.train_metrics.add(metrics, num_examples)
        if bound is not None:
            self.contribution_bounds[owner] = bound

"""Metrics sent with each update, released only as example-weighted means over >= K owners.

    tally.add({"train_loss": 0.4}, num_examples=40)           # each folded update's training metrics
    release_training_metrics(tally, job)                      # {"train_loss": ...} over >= K owners, {} in a DP job
    check_evaluation(header, job)                             # an update's held-out evaluation: MalformedUpdate if bad

Two tallies per round use this: the owners' training metrics and, in rounds the job's `evaluate_every` names, their
evaluation on held-out data of the model the round started from (weighted by the held-out examples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from enclavefl.core.job import JobSpec
from enclavefl.core.update import UpdateHeader
from enclavefl.errors import MalformedUpdate


@dataclass(slots=True)
class TrainingMetricsTally:
    """One round's training metrics (sent with each update): example-weighted means, each over >= K owners.

    Owners normally report the same metrics, but nothing forces it: a metric only one owner reports would be
    that owner's own number in the round summary. Each metric is released only when K or more contributors
    reported it, averaged over those that did; the others are dropped.
    """

    sums: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    reporters: dict[str, int] = field(default_factory=dict)

    def add(self, metrics: Mapping[str, float], num_examples: int) -> None:
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * num_examples
            self.weights[name] = self.weights.get(name, 0.0) + num_examples
            self.reporters[name] = self.reporters.get(name, 0) + 1

    def release(self, *, min_owners: int) -> dict[str, float]:
        return {
            name: self.sums[name] / self.weights[name]
            for name in sorted(self.sums)
            if self.reporters[name] >= min_owners and self.weights[name] > 0
        }


def release_training_metrics(tally: TrainingMetricsTally, job: JobSpec) -> dict[str, float]:
    """What a round summary may carry: means over >= K owners, and nothing at all in a DP job.

    Withheld rather than noised in DP jobs: the metrics are numbers each owner computes and reports on its own
    data, of unbounded sensitivity, and the job's privacy budget is spent on the model alone. Noising them would
    need a clipping bound per metric and a share of epsilon that no job states; releasing them in the clear
    would leave a DP job's guarantee to the model only. The summary goes to every party and the host's console.
    """
    if job.dp is not None:
        return {}
    return tally.release(min_owners=job.min_contributions)


def check_metrics(metrics: Mapping[str, float]) -> None:
    """MalformedUpdate unless every reported metric is a finite number."""
    for name, value in metrics.items():
        if not isinstance(value, float | int) or value != value or value in (float("inf"), float("-inf")):
            raise MalformedUpdate(f"metric {name!r} is not a finite number")


def check_evaluation(header: UpdateHeader, job: JobSpec) -> None:
    """MalformedUpdate unless the update's evaluation (if any) is one the job asks for this round, well formed."""
    if not header.evaluation and not header.evaluation_examples:
        return
    if not job.evaluates_before(header.round):
        raise MalformedUpdate(
            f"the update carries an evaluation, but the job asks for none in round {header.round} "
            f"(evaluate_every = {job.evaluate_every})"
        )
    count = header.evaluation_examples
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= job.max_examples_per_update:
        raise MalformedUpdate(
            f"the evaluation's example count must be from 1 to {job.max_examples_per_update}, got {count!r}"
        )
    if not header.evaluation:
        raise MalformedUpdate("an evaluation must report at least one metric")
    check_metrics(header.evaluation)

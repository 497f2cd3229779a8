"""Protocol messages, shared by the in-memory transport and the gRPC transport (which maps them 1:1)."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class RoundPhase(enum.StrEnum):
    WAITING = "waiting"  # no round open
    OPEN = "open"  # accepting updates
    SIGNING = "signing"  # closed and sealed; released once its contributors signed the receipt (two phases)
    FINISHED = "finished"  # the job's last round is done


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundStatus:
    round: int
    phase: RoundPhase
    contributions: int
    rounds_total: int
    global_model_sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundSummary:
    """What leaves the secure worker after a round: aggregates only, never one owner's numbers."""

    round: int
    contributions: int
    global_model_sha256: str
    metrics: Mapping[str, float]  # example-weighted means over the contributions
    rejected: Mapping[str, int]  # rejection counts by reason (error class name)
    # The owners' evaluation on their held-out data of the model this round started from (released after round
    # - 1), in rounds the job's evaluate_every names: means over >= K owners; empty otherwise.
    evaluation: Mapping[str, float] = field(default_factory=dict)


LARGE_TRANSFER_BYTES = 16 * 1024 * 1024
"""Models at least this large get a line before and after each transfer; smaller ones move too fast to need it."""


def format_round_summary(summary: RoundSummary, rounds_total: int) -> str:
    """One line per closed round: only aggregates, never one owner's numbers."""
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(summary.metrics.items()))
    refused = f"; refused {dict(summary.rejected)}" if summary.rejected else ""
    evaluation = ", ".join(f"{k}={v:.4f}" for k, v in sorted(summary.evaluation.items()))
    evaluated = f"; owners' evaluation of round {summary.round - 1}'s model: {evaluation}" if evaluation else ""
    return (
        f"round {summary.round}/{rounds_total} closed: {summary.contributions} contributions"
        + (f", {metrics}" if metrics else "")
        + f", global model {summary.global_model_sha256[:16]}…{refused}{evaluated}"
    )


def format_rounds(rounds: Sequence[int]) -> str:
    """Round numbers as ranges: [1, 2, 3, 5, 5, 6] -> '1-3, 5 (twice), 6' (a retried round shows its count)."""
    counts = Counter(rounds)
    parts: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run.clear()

    for number in sorted(counts):
        if counts[number] > 1:
            flush()
            times = "twice" if counts[number] == 2 else f"{counts[number]} times"
            parts.append(f"{number} ({times})")
        elif run and number == run[-1] + 1:
            run.append(number)
        else:
            flush()
            run.append(number)
    flush()
    return ", ".join(parts) if parts else "none"

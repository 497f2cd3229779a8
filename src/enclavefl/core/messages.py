"""Protocol messages, shared by the in-memory transport and the gRPC transport (which maps them 1:1)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
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

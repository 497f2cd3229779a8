"""Protocol messages, shared by the in-memory transport and the gRPC transport (which maps them 1:1)."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from enclavefl.core.commitments import commitment_of_payload, new_commitment_salt


class RoundPhase(enum.StrEnum):
    WAITING = "waiting"  # no round open
    OPEN = "open"  # accepting updates
    SIGNING = "signing"  # closed and sealed; released once its contributors signed the receipt (two phases)
    FINISHED = "finished"  # the job's last round is done


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateMessage:
    """One data owner's contribution to one round. `payload` is safetensors bytes of the local model."""

    owner: str
    round: int
    num_examples: int
    payload: bytes
    metrics: Mapping[str, float] = field(default_factory=dict)  # e.g. train_loss; aggregated before release
    # The owner's secret for this upload's receipt commitment (core/commitments.py): fresh per message, from
    # os.urandom. The owner keeps it to check and prove inclusion; only the enclave sees it besides.
    commitment_salt: bytes = field(default_factory=new_commitment_salt, repr=False)

    def commitment(self) -> bytes:
        """What the round's receipt lists for this update: HMAC-SHA256(salt, domain || SHA-256(payload))."""
        return commitment_of_payload(salt=self.commitment_salt, payload=self.payload)


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


LARGE_TRANSFER_BYTES = 16 * 1024 * 1024
"""Models at least this large get a line before and after each transfer; smaller ones move too fast to need it."""


def format_round_summary(summary: RoundSummary, rounds_total: int) -> str:
    """One line per closed round: only aggregates, never one owner's numbers."""
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(summary.metrics.items()))
    refused = f"; refused {dict(summary.rejected)}" if summary.rejected else ""
    return (
        f"round {summary.round}/{rounds_total} closed: {summary.contributions} contributions"
        + (f", {metrics}" if metrics else "")
        + f", global model {summary.global_model_sha256[:16]}…{refused}"
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

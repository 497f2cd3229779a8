"""The status the node answers with, and the job's states: values both sides of every transport read.

    status = node.node_status(data_owner=True, caller="alice")    # a NodeStatus
    status.round_view()                                           # what a waiting data owner acts on

The node's service interface itself (what a transport asks of `enclave/node.py`'s AggregatorNode) is
transport/service.py's NodeService, a type the enclave never loads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from enclavefl.core.messages import RoundPhase
from enclavefl.core.receipts import SignedReceipt

# A model this small travels inside the status that opens its round (a seed job's round is mostly round trips).
INLINE_MODEL_BYTES = 64 * 1024


class JobState(enum.StrEnum):
    AWAITING_MODEL = "awaiting-model"  # the node waits for the model owner's initial model
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # a round failed under on_round_failure = "stop" (or ran out of attempts)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """Where a networked node's job and round stand (RoundStatus plus the job-level state)."""

    round: int
    phase: RoundPhase
    contributions: int
    rounds_total: int
    global_model_sha256: str
    attempt: int  # 1 for a round's first opening, 2 after a retry, ...; 0 when no round is open
    rounds_completed: int
    job_state: JobState
    job_message: str = ""
    # The sealed round's receipt while phase is SIGNING (data owners only; None for the model owner), read together
    # with the phase so a signer needs no second call.
    pending: SignedReceipt | None = None
    released_head_sha256: bytes = b""  # SHA-256 of the last released receipt (b"" before the first release)
    # The open round's global model (safetensors) when it is at most INLINE_MODEL_BYTES (data owners only; else
    # b"": the owner downloads it).
    global_model: bytes = b""
    # Cohorts (a job with clients_per_round), to a data owner while its round is open or signing: whether the
    # enclave left it out of this round's cohort (then it waits without uploading), and its own secret token for
    # the round, whose hash the round's receipt lists exactly when it is a member (core/cohort.py).
    outside_cohort: bool = False
    cohort_token: bytes = b""

    def round_view(self) -> tuple[object, ...]:
        """What a waiting data owner acts on: the round, its phase and attempt, the rounds released, the job's
        state. Contribution counts and messages change too, but wake nobody: an owner that uploaded waits for the
        seal."""
        return (self.round, self.phase, self.attempt, self.rounds_completed, self.job_state)

"""The model owner's view of a running job: one record per released round, with its own evaluation of the model.

    def evaluate(round_index: int, weights: ModelWeights) -> dict[str, float]:   # Flower's evaluate_fn, in numpy
        return {"accuracy": ...}

    for record in follow_rounds(session, evaluate=evaluate, loggers=[TensorBoardLogger("runs/trial")]):
        print(record.round, record.train, record.central)

The released model of a round is fetched as soon as its summary arrives (the node keeps it until it releases the
next round), checked against the digest the summary and the signed receipt name, and handed to `evaluate`. A
round whose model the node no longer holds (the next round was released first) is recorded without a central
evaluation and said so once through `on_line`: nothing is guessed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from enclavefl.core.codec import ModelBytes, decode_weights
from enclavefl.core.messages import RoundSummary
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ProtocolError, RoundStateError, TaskError, WrongRound
from enclavefl.owner.metrics_history import RoundRecord

CentralEvaluation = Callable[[int, ModelWeights], Mapping[str, float]]


class RoundSource(Protocol):
    """What following a job needs of the model owner's session (`ModelOwnerSession`)."""

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]: ...

    def released_model_bytes(self, round_index: int) -> ModelBytes: ...


class MetricsLogger(Protocol):
    """Where round records go besides the caller: TensorBoard, MLflow, a file (owner/metrics_loggers.py)."""

    def log_round(self, record: RoundRecord) -> None: ...

    def close(self) -> None: ...


def follow_rounds(
    source: RoundSource,
    *,
    evaluate: CentralEvaluation | None = None,
    loggers: Iterable[MetricsLogger] = (),
    after_round: int = 0,
    on_line: Callable[[str], None] | None = None,
) -> Iterator[RoundRecord]:
    """One RoundRecord per round released after `after_round`, until the job ends; every logger hears each one."""
    chosen = list(loggers)
    for summary in source.watch(after_round=after_round):
        central = _evaluate(source, summary, evaluate, on_line) if evaluate is not None else {}
        record = RoundRecord.from_summary(summary, central=central)
        for logger in chosen:
            logger.log_round(record)
        yield record


def _evaluate(
    source: RoundSource, summary: RoundSummary, evaluate: CentralEvaluation, on_line: Callable[[str], None] | None
) -> dict[str, float]:
    try:
        payload = source.released_model_bytes(summary.round)
    except (WrongRound, RoundStateError) as exc:  # the node released the next round before we asked
        if on_line is not None:
            on_line(f"round {summary.round}: no central evaluation, the node no longer holds its model ({exc})")
        return {}
    weights = decode_weights(payload)
    if not hmac.compare_digest(weights.sha256().hex(), summary.global_model_sha256):
        raise ProtocolError(
            f"round {summary.round}: the node sent a model whose digest is not the released one "
            f"{summary.global_model_sha256[:16]}…"
        )
    return central_metrics(evaluate, summary.round, weights)


def central_metrics(evaluate: CentralEvaluation, round_index: int, weights: ModelWeights) -> dict[str, float]:
    """`evaluate`'s numbers as floats; TaskError (one line) when it raises or returns something that is not."""
    try:
        raw = evaluate(round_index, weights)
        metrics = {str(k): float(v) for k, v in dict(raw).items()}
    except Exception as exc:  # the model owner's own code
        raise TaskError(f"the central evaluation of round {round_index} raised {type(exc).__name__}: {exc}") from None
    return metrics  # a diverged model's inf loss is a finding, kept as it is

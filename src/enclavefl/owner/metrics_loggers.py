"""Round records where ML people already look: JSON lines, CSV, TensorBoard event files, an MLflow run.

    loggers = [TensorBoardLogger(Path("runs/trial")), MlflowLogger(job, tracking_uri="file:./mlruns")]
    for record in follow_rounds(session, loggers=loggers): ...      # owner/round_follower.py
    for logger in loggers: logger.close()

TensorBoard and MLflow are optional extras (`pip install 'enclavefl[tensorboard]'`, `'enclavefl[mlflow]'`); a
logger whose library is missing says so in one line (ConfigError) when it is made, before anything runs.
Scalars are named `group/metric` (`train/train_loss`, `federated/accuracy`, `central/loss`) plus
`node/contributions`, with the round as the step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TextIO

from enclavefl.core.job import JobSpec
from enclavefl.errors import ConfigError
from enclavefl.owner.metrics_history import RoundRecord, csv_header, csv_row


def scalars(record: RoundRecord) -> dict[str, float]:
    """What a round logs: every metric as `group/name`, and the number of contributions."""
    return {**record.metrics(), "node/contributions": float(record.contributions)}


class JsonLinesLogger:
    """One JSON object a line (`job watch --json`), flushed at each round so a pipe sees it at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def log_round(self, record: RoundRecord) -> None:
        self.stream.write(record.to_json() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class CsvLogger:
    """CSV with a header from the first round's metrics (`job watch --csv`); a metric first seen later is left out."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.names: list[str] | None = None

    def log_round(self, record: RoundRecord) -> None:
        if self.names is None:
            self.names = sorted(record.metrics())
            self.stream.write(csv_header(self.names) + "\n")
        self.stream.write(csv_row(record, self.names) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class TensorBoardLogger:
    """TensorBoard event files in `logdir` (read by `tensorboard --logdir`), written with tensorboard's own writer."""

    def __init__(self, logdir: Path) -> None:
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise ConfigError(
                "--tensorboard: needs the tensorboard package (pip install 'enclavefl[tensorboard]')"
            ) from None
        self.logdir = logdir
        self._writer = EventFileWriter(str(logdir))

    def log_round(self, record: RoundRecord) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        by_step: dict[int, list[Summary.Value]] = {}  # owners' evaluation describes the round before: its own step
        for name, value in sorted(scalars(record).items()):
            by_step.setdefault(record.step_of(name), []).append(Summary.Value(tag=name, simple_value=value))
        for step, values in sorted(by_step.items()):
            self._writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class MlflowLogger:
    """One MLflow run per job: the job's figures as parameters, each round's scalars as metrics at that step."""

    def __init__(
        self,
        job: JobSpec,
        *,
        tracking_uri: str | None = None,
        experiment: str = "enclavefl",
        run_name: str | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("--mlflow: needs the mlflow package (pip install 'enclavefl[mlflow]')") from None
        self._client: Any = MlflowClient(tracking_uri=tracking_uri)
        try:
            found = self._client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else self._client.create_experiment(experiment)
            run = self._client.create_run(experiment_id, run_name=run_name or job.name)
        except Exception as exc:  # mlflow's own errors (a store it refuses, a server that does not answer)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"--mlflow {tracking_uri}: MLflow refused to start a run: {first}") from None
        self.run_id: str = run.info.run_id
        params = {
            "job": job.name,
            "job_digest": job.digest().hex(),
            "rounds": job.rounds,
            "min_contributions": job.min_contributions,
            "strategy": job.strategy.name,
            "dp": job.dp is not None,
            "owners": len(job.data_owners),
        }
        for key, value in params.items():
            self._client.log_param(self.run_id, key, str(value))

    def log_round(self, record: RoundRecord) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(name, value, stamp, record.step_of(name)) for name, value in sorted(scalars(record).items())]
        self._client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self._client.set_terminated(self.run_id)

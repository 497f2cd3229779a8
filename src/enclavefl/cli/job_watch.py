"""`enclavefl job watch`: follow the rounds, evaluate each released model, log the figures where people look.

Registered on the `job` group by cli/job.py. Without --evaluate it stays torch-free, like every `job` command.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from enclavefl.cli.job_session import (
    TALKS_TO_NODE,
    CertOpt,
    JobOpt,
    KeyOpt,
    NodeOpt,
    NoStateOpt,
    PccsOpt,
    PolicyOpt,
    StateOpt,
    call,
    connect,
)
from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import EnclaveFLError

if TYPE_CHECKING:
    from enclavefl.owner.metrics_history import RoundRecord
    from enclavefl.owner.round_follower import CentralEvaluation, MetricsLogger

WATCH_EPILOG = exit_status_help(ExitCode.FAILED, *TALKS_TO_NODE)
console = Console(soft_wrap=True)  # piped output keeps each line (and each hash) whole


def watch(
    node: NodeOpt,
    job: JobOpt,
    policy: PolicyOpt,
    key: KeyOpt,
    cert: CertOpt,
    state: StateOpt = None,
    insecure_no_state: NoStateOpt = False,
    pccs_url: PccsOpt = None,
    json_lines: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object per round on stdout (no progress bar; messages on stderr)."),
    ] = False,
    csv_out: Annotated[
        bool, typer.Option("--csv", help="Print CSV on stdout: a header, then one row per round (no progress bar).")
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Also append each round's record to this file (JSON lines): `job plot` and `job report --metrics` "
            "read it.",
        ),
    ] = None,
    evaluate: Annotated[
        str | None,
        typer.Option(
            "--evaluate",
            help="Evaluate each released model yourself (Flower's evaluate_fn) with this task's evaluate(): "
            "package.module:ATTR or path/to/file.py:ATTR; needs --eval-data. Loads torch.",
        ),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval-data", help="Your held-out data for --evaluate (safetensors x and y, or what the task reads)."
        ),
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option("--tensorboard", help="Write TensorBoard event files here (`tensorboard --logdir DIR`)."),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option("--mlflow", help="Log an MLflow run to this tracking URI (e.g. file:./mlruns)."),
    ] = None,
    mlflow_experiment: Annotated[str, typer.Option(help="The MLflow experiment of --mlflow.")] = "enclavefl",
) -> None:
    """Attest the node and follow the rounds: a progress bar and one line per round with the released metrics.

    Each round's line shows what the node released: the owners' training metrics (means over >= K owners; none
    in a DP job). With --evaluate and --eval-data you also evaluate each released model on your own data
    (`central` metrics). --json or --csv print one record per round for scripts; --record keeps them in a file
    (`job plot` draws it, `job report --metrics` shows it); --tensorboard and --mlflow log every figure there
    (optional extras: pip install 'enclavefl\\[tensorboard]' or 'enclavefl\\[mlflow]').
    """
    from enclavefl.transport.api import JobState

    if json_lines and csv_out:
        _config_error("ConfigError: --json and --csv: choose one")
    if (evaluate is None) != (eval_data is None):
        _config_error("ConfigError: --evaluate and --eval-data: give both (the task and your held-out data) or neither")
    machine = json_lines or csv_out

    def say(line: str) -> None:  # with --json or --csv, stdout holds the records alone
        typer.echo(line, err=machine)

    with ExitStack() as stack:
        loggers = _loggers(stack, job, json_lines, csv_out, record, tensorboard, mlflow, mlflow_experiment)
        central = _central(evaluate, eval_data) if evaluate is not None and eval_data is not None else None
        session = connect(node, job, policy, key, cert, state, pccs_url, insecure_no_state)
        stack.callback(session.close)
        already = call(session.status).rounds_completed  # a resumed node does not replay earlier summaries
        rounds = session.rounds(evaluate=central, loggers=loggers, after_round=0, on_line=say)
        if machine:
            call(lambda: [None for _ in rounds])
        else:
            call(lambda: _follow_with_bar(rounds, session.job.rounds, already))
        final = call(session.status)
    say(f"job {final.job_state.value}: {final.job_message}")
    raise typer.Exit(ExitCode.OK if final.job_state is JobState.FINISHED else ExitCode.FAILED)


def _follow_with_bar(rounds: Iterator[RoundRecord], total: int, already: int) -> None:
    from enclavefl.core.messages import RoundSummary, format_round_summary

    with Progress(
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("rounds", total=total, metrics="", completed=already)
        for rec in rounds:
            shown = " ".join(f"{k} {v:.4f}" for k, v in sorted(rec.metrics().items()))
            progress.update(bar, completed=rec.round, metrics=shown)
            summary = RoundSummary(
                round=rec.round,
                contributions=rec.contributions,
                global_model_sha256=rec.global_model_sha256,
                metrics=rec.train,
                rejected=rec.rejected,
            )
            central = ", ".join(f"{k}={v:.4f}" for k, v in sorted(rec.central.items()))
            progress.console.print(
                format_round_summary(summary, total) + (f"; your evaluation: {central}" if central else "")
            )


def _loggers(
    stack: ExitStack,
    job: Path,
    json_lines: bool,
    csv_out: bool,
    record: Path | None,
    tensorboard: Path | None,
    mlflow: str | None,
    experiment: str,
) -> list[MetricsLogger]:
    """Every logger asked for, made before the node is contacted (a missing extra is one line and status 2)."""
    from enclavefl.owner.metrics_loggers import CsvLogger, JsonLinesLogger, MlflowLogger, TensorBoardLogger

    chosen: list[MetricsLogger] = []
    try:
        if json_lines:
            chosen.append(JsonLinesLogger(sys.stdout))
        if csv_out:
            chosen.append(CsvLogger(sys.stdout))
        if record is not None:
            chosen.append(JsonLinesLogger(stack.enter_context(record.open("a", encoding="utf-8"))))
        if tensorboard is not None:
            chosen.append(TensorBoardLogger(tensorboard))
        if mlflow is not None:
            from enclavefl.core.jobfile import load_job

            chosen.append(MlflowLogger(load_job(job), tracking_uri=mlflow, experiment=experiment))
    except (EnclaveFLError, OSError) as exc:
        _config_error(f"{type(exc).__name__}: {exc}")
    for logger in chosen:
        stack.callback(logger.close)
    return chosen


def _central(task_spec: str, data: Path) -> CentralEvaluation:
    """The model owner's evaluate_fn from a task and its held-out data, checked before the node is contacted."""
    from enclavefl.owner.preflight import load_owner_data, load_task
    from enclavefl.task.evaluation import central_evaluation

    try:
        task = load_task(task_spec)
        return central_evaluation(task, load_owner_data(task, data))
    except (EnclaveFLError, OSError) as exc:
        _config_error(f"{type(exc).__name__}: {exc}")


def _config_error(message: str) -> NoReturn:
    """`message` is `Class: what is wrong`; one line, status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.CONFIG)

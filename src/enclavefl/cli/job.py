"""`enclavefl job`: the model owner writes the job spec, submits the initial model, watches, downloads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from enclavefl.cli import job_init, job_plot, job_views, job_watch
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
from enclavefl.core.messages import LARGE_TRANSFER_BYTES
from enclavefl.errors import EnclaveFLError

if TYPE_CHECKING:  # the owner modules reach torch, the job spec numpy: each command imports what it uses
    from enclavefl.api.model_owner import ModelOwnerClient
    from enclavefl.transport.api import NodeStatus

T = TypeVar("T")
DEFAULT_MODEL_OUT = Path("model.safetensors")

app = typer.Typer(
    help=(
        "The model owner's commands: write the job spec, submit the initial model, watch, download.\n\n"
        "`job init` writes job.toml (send it to every data owner and to the node operator); `job initial-model` "
        "writes its --model from a task file and prints a frozen base model's digest (LoRA adapters). Once the node "
        "runs, "
        "`job submit` attests it and sends the initial model; `job watch` follows the rounds; `job download` "
        "fetches the final model after checking the signed receipt chain. Every command that talks to the node "
        "first verifies its attestation against --policy."
    ),
    no_args_is_help=True,
)


@app.callback()
def _job() -> None:
    """The model owner's commands: write the job spec, submit the initial model, watch, download."""


app.command("inspect", epilog=job_views.inspect_epilog)(job_views.inspect)
app.command("report", epilog=job_views.report_epilog)(job_views.report)
app.command("watch", epilog=job_watch.WATCH_EPILOG)(job_watch.watch)
app.command("plot", epilog=job_plot.PLOT_EPILOG)(job_plot.plot)


app.command(epilog=exit_status_help())(job_init.init)


@app.command("initial-model", epilog=exit_status_help())
def initial_model(
    task: Annotated[str, typer.Option(help="The task whose model the job trains: task.py:NAME or module:NAME.")],
    out: Annotated[Path, typer.Option(help="Where to write the initial model (safetensors).")] = Path(
        "init.safetensors"
    ),
    seed: Annotated[int, typer.Option(help="torch.manual_seed before the model is built: its initial weights.")] = 0,
) -> None:
    """Build the task's model and write its initial weights: the tensors that train and travel (the whole model, or
    a TrainableSubset's part: LoRA adapters, say). For a model with a frozen base, print the base model's name and
    weights digest, for `job init --base-model NAME=SHA256`: every data owner's base must have that digest."""
    from enclavefl.cli.task_model import describe_initial_model

    try:
        lines = describe_initial_model(task, out=out, seed=seed)
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    for line in lines:
        typer.echo(line)


@app.command(epilog=exit_status_help(*TALKS_TO_NODE))
def submit(
    node: NodeOpt,
    job: JobOpt,
    policy: PolicyOpt,
    key: KeyOpt,
    cert: CertOpt,
    model: Annotated[Path, typer.Option(help="The initial model (safetensors) named by the job.")],
    state: StateOpt = None,
    insecure_no_state: NoStateOpt = False,
    pccs_url: PccsOpt = None,
) -> None:
    """Attest the node, then send the initial model (its hash must be the job's); the node starts round 1."""
    _check_initial_model(model, job)
    session = connect(node, job, policy, key, cert, state, pccs_url, insecure_no_state)
    _announce_transfer(session, "uploading the initial model")
    try:
        digest = call(lambda: session.submit(model))
        st = call(session.status)
    finally:
        session.close()
    typer.echo(f"initial model (weights digest {digest}) accepted; job {st.job_state.value}: {st.job_message}")


@app.command(epilog=exit_status_help(*TALKS_TO_NODE))
def status(
    node: NodeOpt,
    job: JobOpt,
    policy: PolicyOpt,
    key: KeyOpt,
    cert: CertOpt,
    state: StateOpt = None,
    insecure_no_state: NoStateOpt = False,
    pccs_url: PccsOpt = None,
) -> None:
    """Attest the node and print where the job stands."""
    session = connect(node, job, policy, key, cert, state, pccs_url, insecure_no_state)
    try:
        st = call(session.status)
    finally:
        session.close()
    typer.echo(describe_status(st))


def describe_status(st: NodeStatus) -> str:
    """Where the job stands; once it ended, that it ended and what is left to do, not a round in progress."""
    from enclavefl.transport.api import JobState

    if st.job_state is JobState.FINISHED:
        return (
            f"job finished: {st.job_message}\nthe job ended: all {st.rounds_completed}/{st.rounds_total} rounds "
            "released; `enclavefl job download` fetches the final model and its receipts while the node still serves"
        )
    if st.job_state is JobState.FAILED:
        return (
            f"job failed: {st.job_message}\nthe job ended: {st.rounds_completed}/{st.rounds_total} rounds released; "
            "no further round will run"
        )
    return (
        f"job {st.job_state.value}: {st.job_message}\nround {st.round} ({st.phase.value}), "
        f"{st.rounds_completed}/{st.rounds_total} completed, {st.contributions} contributions so far"
    )


@app.command(epilog=exit_status_help(*TALKS_TO_NODE))
def download(
    node: NodeOpt,
    job: JobOpt,
    policy: PolicyOpt,
    key: KeyOpt,
    cert: CertOpt,
    out: Annotated[Path, typer.Option(help="Where to write the final model (safetensors).")] = DEFAULT_MODEL_OUT,
    receipts: Annotated[
        Path | None, typer.Option(help="Where to write the signed receipt chain (default: OUT with .receipts.json).")
    ] = None,
    state: StateOpt = None,
    insecure_no_state: NoStateOpt = False,
    pccs_url: PccsOpt = None,
) -> None:
    """Download the final model, accepted only if the signed receipt chain verifies and its last receipt names
    the model's hash; write the model and the chain (JSON, re-verifiable by anyone with the node's key)."""
    receipts_out = receipts or out.with_suffix(".receipts.json")
    for path in (out, receipts_out):  # before attesting and downloading: a wrong --out is the user's typo
        if not path.absolute().parent.is_dir():
            typer.echo(f"error: {path}: its directory does not exist", err=True)
            raise typer.Exit(ExitCode.CONFIG)
    session = connect(node, job, policy, key, cert, state, pccs_url, insecure_no_state)
    _require_finished(session)
    _announce_transfer(session, "downloading the final model")
    try:
        final = call(lambda: session.download(out, receipts_out=receipts_out))
    finally:
        session.close()
    typer.echo(
        f"wrote {out} (file sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}; weights digest "
        f"{final.weights.sha256().hex()}, the one the last receipt signs) and {receipts_out}: "
        f"{len(final.receipts)} receipts verified"
    )


# --- internals ------------------------------------------------------------------------------
def _announce_transfer(session: ModelOwnerClient, what: str) -> None:
    """One line before a large model moves, so a long upload or download is not silence."""
    schema = session.job.model_schema
    if schema is not None and schema.nbytes >= LARGE_TRANSFER_BYTES:
        typer.echo(f"{what} ({schema.nbytes / 2**20:.1f} MiB)...")


def _require_finished(session: ModelOwnerClient) -> None:
    """A job that has not finished has no final model: say where it stands (status 4), not 'the chain has 0
    receipts'."""
    from enclavefl.transport.api import JobState

    st = call(session.status)
    if st.job_state is not JobState.FINISHED:
        session.close()
        typer.echo(
            f"refused: the job has not finished, so there is no final model yet (job {st.job_state.value}, "
            f"{st.rounds_completed} of {session.job.rounds} rounds: {st.job_message}); `job watch` follows it",
            err=True,
        )
        raise typer.Exit(ExitCode.REFUSED)


def _check_initial_model(model: Path, job: Path) -> None:
    """Offline, before attesting: --model reads, and it is the model the job commits to (the node checks it too)."""
    from enclavefl.core.jobfile import load_job, read_initial_model

    try:
        spec = load_job(job)
        digest = read_initial_model(model).sha256().hex()
    except EnclaveFLError as exc:
        where = f"--model {model}: " if "initial_model" in str(exc) else ""
        _usage_error(f"{type(exc).__name__}: {where}{exc}")
    if digest != spec.initial_model_sha256:
        _usage_error(
            f"ConfigError: --model {model} is not the job's initial model: its weights digest is {digest[:16]}…, "
            f"{job} commits to {spec.initial_model_sha256[:16]}… (nothing was sent)"
        )


def _usage_error(message: str) -> NoReturn:
    """`message` is `Class: what is wrong`; one line on stderr, status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.CONFIG)

"""`enclavefl job`: the model owner writes the job spec, submits the initial model, watches, downloads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from enclavefl.cli import job_plot, job_views, job_watch
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


@app.command(epilog=exit_status_help())
def init(
    name: Annotated[str, typer.Option(help="Job name.")],
    model: Annotated[Path, typer.Option(help="Initial model (safetensors); the job commits to its schema and hash.")],
    owner: Annotated[list[str], typer.Option(help="Enroll a data owner: NAME=CERT.pem (repeat for each owner).")],
    model_owner_cert: Annotated[
        Path | None, typer.Option(help="Your certificate (from `data-owner keygen --name model-owner`).")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 10,
    min_contributions: Annotated[int, typer.Option(min=1, help="K: no aggregate of fewer updates leaves.")] = 2,
    deadline: Annotated[float, typer.Option(help="Seconds a round waits for updates before it closes.")] = 300.0,
    local_steps: Annotated[
        int | None, typer.Option(min=1, help="Optimizer steps per owner per round [default: 5 unless --local-epochs].")
    ] = None,
    local_epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over each owner's data per round (instead of --local-steps).")
    ] = None,
    lr: Annotated[float, typer.Option(help="Local learning rate.")] = 0.1,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Local batch size (default: full batch).")] = None,
    optimizer: Annotated[str, typer.Option(help="Local optimizer: 'sgd' or 'adam' (adapters often use adam).")] = "sgd",
    momentum: Annotated[float, typer.Option(min=0.0, help="SGD momentum (0: none).")] = 0.0,
    proximal_mu: Annotated[
        float, typer.Option(min=0.0, help="FedProx: weight of the proximal term mu/2 ||w - w_global||^2 (0: FedAvg).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of each owner's local shuffling and initialization.")] = 0,
    weighted: Annotated[bool, typer.Option(help="FedAvg weighted by example counts (else plain mean).")] = True,
    strategy: Annotated[
        str,
        typer.Option(
            help="Aggregation rule: fedavg, centered_clipping (robust, needs --param tau=R), trimmed_mean, multikrum, "
            "fedavgm, fedadam, ... A rule that could release a value computed from fewer than K updates (krum, "
            "median, multikrum with select < K, ...) is refused (docs/robustness.md)."
        ),
    ] = "fedavg",
    param: Annotated[
        list[str] | None,
        typer.Option(help="A strategy parameter KEY=VALUE (repeat), e.g. --param tau=0.5; VALUE is a TOML value."),
    ] = None,
    on_round_failure: Annotated[str, typer.Option(help="'retry' a round with fewer than K updates, or 'stop'.")] = (
        "retry"
    ),
    max_examples_per_update: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The most examples one update may declare (its weight in a weighted mean); more is refused. "
            "Set it near your largest owner's data set: it bounds how far one owner can outweigh the others "
            "[default: 10^9].",
        ),
    ] = None,
    evaluate_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="Owners' evaluation: every N rounds each data owner evaluates the model the round starts from on "
            "its held-out data (`data-owner run --eval-data`) and the node releases the means over >= K owners "
            "(rounds 1, 1+N, ...; not with DP or masked mode). 0: never.",
        ),
    ] = 0,
    dp_epsilon: Annotated[
        float | None,
        typer.Option(help="Central DP: target epsilon over all rounds; the noise multiplier is calibrated to it."),
    ] = None,
    dp_noise_multiplier: Annotated[
        float | None, typer.Option(help="Central DP: noise std / clip norm (instead of --dp-epsilon).")
    ] = None,
    dp_clip_norm: Annotated[float, typer.Option(help="Central DP: L2 bound on each owner's update delta.")] = 1.0,
    dp_delta: Annotated[float, typer.Option(help="Central DP: delta of the (epsilon, delta) guarantee.")] = 1e-5,
    dp_accountant: Annotated[str, typer.Option(help="Central DP: 'rdp' or 'pld' (tighter, slower).")] = "rdp",
    base_model: Annotated[
        str | None,
        typer.Option(
            help="NAME=SHA256: --model holds only the part that trains and travels (LoRA adapters, a named subset) "
            "and each data owner trains it on its own copy of this frozen base model, refused before training "
            "unless that copy's weights digest is SHA256 (`enclavefl job initial-model --task ...` prints it)."
        ),
    ] = None,
    clients_per_round: Annotated[
        str | None,
        typer.Option(
            help="Owners the enclave draws for each round: a count (20) or a fraction of the enrolled (0.1 or 10%). "
            "The draw uses the enclave's own randomness after the round opens, so the operator cannot pick who takes "
            "part; owners outside a round's cohort wait. K then counts the cohort's updates [default: every owner, "
            "every round].",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Job spec to write.")] = Path("job.toml"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace --out if it exists (a job spec is not rewritten silently).")
    ] = False,
) -> None:
    """Write a self-contained job spec: training, the aggregation rule, K, deadline, enrolled owners, the model's hash.

    Every party checks this exact file: data owners run with it, and the node must attest its digest. Robust
    aggregation and server optimizers: --strategy and --param (e.g. --strategy centered_clipping --param tau=0.5).
    With --dp-epsilon or --dp-noise-multiplier the job adds Gaussian noise inside the enclave (an unweighted mean)
    and its dp table lists the epsilon after every round, which each data owner recomputes before it joins
    (docs/privacy.md).
    """
    from enclavefl.api.jobs import make_job
    from enclavefl.cli.job_options import base_model_option, strategy_params
    from enclavefl.core.job import DEFAULT_MAX_EXAMPLES_PER_UPDATE, TrainConfig
    from enclavefl.core.jobfile import read_initial_model
    from enclavefl.core.jobfile_write import dump_job
    from enclavefl.owner.model_owner_files import read_owner_certificates

    if model_owner_cert is None:
        _usage_error(
            "ConfigError: --model-owner-cert is missing: a job without the model owner's certificate can never be "
            "submitted (make one with `enclavefl data-owner keygen --name model-owner --out keys`)"
        )
    if out.exists() and not force:
        _usage_error(f"ConfigError: --out {out} exists; nothing was written (--force replaces it)")
    try:
        steps = local_steps if local_steps is not None or local_epochs is not None else 5
        train = TrainConfig(
            local_steps=steps,
            local_epochs=local_epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,  # type: ignore[arg-type]  # TrainConfig checks the name
            momentum=momentum,
            proximal_mu=proximal_mu,
            seed=seed,
        )
        job = make_job(
            name=name,
            initial_model=read_initial_model(model),
            owners=read_owner_certificates(owner),
            model_owner_certificate=_model_owner_certificate(model_owner_cert),
            rounds=rounds,
            train=train,
            min_contributions=min_contributions,
            round_deadline_seconds=deadline,
            strategy=strategy,
            params=strategy_params(param or []),
            weighted=weighted,
            on_round_failure=on_round_failure,
            dp_epsilon=dp_epsilon,
            dp_noise_multiplier=dp_noise_multiplier,
            dp_clip_norm=dp_clip_norm,
            dp_delta=dp_delta,
            dp_accountant=dp_accountant,
            max_examples_per_update=max_examples_per_update or DEFAULT_MAX_EXAMPLES_PER_UPDATE,
            base_model=base_model_option(base_model),
            clients_per_round=clients_per_round,
            evaluate_every=evaluate_every,
        )
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    try:
        out.write_text(dump_job(job))
    except OSError as exc:
        typer.echo(f"error: {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    typer.echo(
        f"wrote {out}: job {job.name!r}, job digest {job.digest().hex()}, initial model weights digest "
        f"{job.initial_model_sha256}"
        + (f", frozen base model {job.base_model.name!r} {job.base_model.sha256}" if job.base_model else "")
    )


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


def _model_owner_certificate(path: Path | None) -> str:
    from enclavefl.owner.model_owner_files import read_certificate

    return read_certificate(path, "--model-owner-cert") if path is not None else ""

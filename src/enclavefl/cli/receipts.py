"""`enclavefl receipts verify`: a third party checks where a model came from, offline, from the receipts file."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import AttestationError, ConfigError, EnclaveFLError
from enclavefl.tee.verify.policy_file import load_policy

if TYPE_CHECKING:  # the owner modules reach torch: the command imports them when it runs
    from enclavefl.owner.provenance import Provenance


app = typer.Typer(
    help=(
        "Check a model's receipts file (written by `job download`) without talking to anyone: the embedded "
        "attestation against your policy, and the signed receipt chain against the attested key."
    ),
    no_args_is_help=True,
)


@app.callback()
def _receipts() -> None:
    """Check a model's receipts file offline: attestation of the signing key, then the receipt chain."""


@app.command(epilog=exit_status_help(ExitCode.ATTESTATION_REFUSED, ExitCode.REFUSED))
def verify(
    file: Annotated[Path, typer.Argument(help="The receipts file, e.g. model.receipts.json.", dir_okay=False)],
    policy: Annotated[Path, typer.Option("--policy", help="Your attestation policy (TOML): the enclaves you accept.")],
    model: Annotated[
        Path | None, typer.Option("--model", help="The model file (safetensors) the chain must end with.")
    ] = None,
    job: Annotated[
        Path | None,
        typer.Option("--job", help="The agreed job spec (TOML): the attested job digest must be its digest."),
    ] = None,
    now: Annotated[
        bool,
        typer.Option(
            "--now/--at-attestation-time",
            help="Check the quote's collateral and TCB status at the present time instead of when the model "
            "owner attested the node (collateral expires within weeks; the default keeps old files checkable).",
        ),
    ] = False,
) -> None:
    """Confirm that a model came from an attested enclave running the agreed job.

    Checks, in order: the embedded DCAP quote and collateral verify and satisfy POLICY (MRENCLAVE/MRSIGNER, TCB,
    no debug, simulation only if allowed); the quote's report data binds the key that signed the chain and the
    job digest (and, with --job, that digest is the job's); every receipt is signed by that key for that job,
    linked from round 1; the last receipt names the final model (and --model's hash). A refused attestation
    (evidence, policy or binding) exits 3; a refused chain or model, or a JSON file that is not a v2 receipts
    file, exits 4; a receipts file that is missing or not JSON (cut short) exits 2.
    """
    from enclavefl.api.attestation import verify_receipts
    from enclavefl.core.jobfile import load_job, read_initial_model
    from enclavefl.owner.notices import policy_warning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # announced below in one line
            chosen = load_policy(policy)
        spec = load_job(job) if job is not None else None
        model_sha256 = read_initial_model(model).sha256() if model is not None else None
        _require_json(file)
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    warning = policy_warning("verifier", chosen)
    if warning is not None:
        typer.echo(warning, err=True)
    try:
        provenance = verify_receipts(
            file, policy=chosen, job=spec, final_model_sha256=model_sha256, now=int(time.time()) if now else None
        )
    except AttestationError as exc:
        typer.echo(f"attestation refused: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.ATTESTATION_REFUSED) from exc
    except ConfigError as exc:  # e.g. a policy that names no enclave at all
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except EnclaveFLError as exc:
        typer.echo(f"refused: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from exc
    _report(provenance, job_checked=spec is not None, model_checked=model is not None)


def _require_json(file: Path) -> None:
    """A receipts file that is missing, unreadable or cut short is the user's input (status 2), not a refused
    chain (status 4)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the receipts file: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{file}: not a receipts file, or cut short (not JSON: {exc})") from None


def _report(provenance: Provenance, *, job_checked: bool, model_checked: bool) -> None:
    from enclavefl.owner.notices import describe_enclave

    typer.echo(describe_enclave(provenance.enclave))
    rounds = provenance.receipts
    agreed = " (the agreed job)" if job_checked else " (pass --job to compare it with the agreed job)"
    typer.echo(f"job digest {provenance.job_digest.hex()}{agreed}")
    contributions = ", ".join(str(r.contributions) for r in rounds)
    typer.echo(f"{len(rounds)} receipts signed by the attested key; contributions per round: {contributions}")
    epsilon = rounds[-1].cumulative_epsilon
    if epsilon is not None:
        typer.echo(f"cumulative epsilon {epsilon:g} (dp {rounds[-1].dp})")
    given = " = the given model" if model_checked else ""
    typer.echo(f"verified: final model sha256 {provenance.final_model_sha256.hex()}{given}")

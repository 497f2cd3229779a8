"""`enclavefl receipts verify`: a third party checks where a model came from, offline, from the receipts file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from enclavefl.cli.when import NOW_HELP, parse_verification_time
from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import AttestationError, CollateralExpired, ConfigError, EnclaveFLError
from enclavefl.tee.verify.policy_file import load_policy

if TYPE_CHECKING:  # the owner modules reach torch: the command imports them when it runs
    from enclavefl.owner.provenance import Provenance
    from enclavefl.tee.collateral import CollateralSource


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
    now: Annotated[str | None, typer.Option("--now", help=NOW_HELP)] = None,
    collateral: Annotated[
        Path | None,
        typer.Option(
            "--collateral",
            help="Judge the quote with this collateral (dcap-qvl QuoteCollateralV3 JSON, e.g. the bundle "
            "`enclavefl node agent` keeps) instead of the one embedded in FILE, which expires within a month.",
            dir_okay=False,
        ),
    ] = None,
    pccs_url: Annotated[
        str | None, typer.Option("--pccs-url", help="Judge the quote with current collateral from this PCCS.")
    ] = None,
    insecure_at_attestation_time: Annotated[
        bool,
        typer.Option(
            "--insecure-at-attestation-time",
            help="Judge the evidence as of when the model owner attested the node (the time written in FILE), "
            "not now: it then says only that the enclave was acceptable THEN; a TCB revoked since still passes.",
        ),
    ] = False,
) -> None:
    """Confirm that a model came from an attested enclave running the agreed job.

    Checks, in order: the embedded DCAP quote and its collateral verify at NOW (default: the present) and satisfy
    POLICY (MRENCLAVE/MRSIGNER, TCB, no debug, simulation only if allowed); the quote's report data binds the key
    that signed the chain and the job digest (and, with --job, that digest is the job's); every receipt is signed
    by that key for that job, linked from round 1; the last receipt names the final model (and --model's hash).

    Collateral is valid for about a month: for an older file pass current collateral (--collateral or
    --pccs-url), which also says whether the platform's TCB was revoked since. A refused attestation (evidence,
    policy or binding) exits 3; a refused chain or model, or a JSON file that is not a v2 receipts file, exits 4;
    a receipts file that is missing or not JSON (cut short) exits 2.
    """
    from enclavefl.api.attestation import verify_receipts
    from enclavefl.core.jobfile import load_job, read_initial_model
    from enclavefl.owner.notices import policy_warning

    try:
        if insecure_at_attestation_time and now is not None:
            raise ConfigError("--now and --insecure-at-attestation-time: give one time to judge the evidence at")
        if collateral is not None and pccs_url is not None:
            raise ConfigError("--collateral and --pccs-url: give one source of current collateral")
        when = None if insecure_at_attestation_time else parse_verification_time(now)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # announced below in one line
            chosen = load_policy(policy)
        spec = load_job(job) if job is not None else None
        model_sha256 = read_initial_model(model).sha256() if model is not None else None
        source = _collateral_source(collateral, pccs_url)
        _require_json(file)
    except (ConfigError, OSError) as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    warning = policy_warning("verifier", chosen)
    if warning is not None:
        typer.echo(warning, err=True)
    if insecure_at_attestation_time:
        typer.echo(
            "INSECURE: judging the evidence as of when the model owner attested the node, not now: a TCB revoked "
            "since, or collateral expired since, is not seen",
            err=True,
        )
    try:
        provenance = verify_receipts(
            file,
            policy=chosen,
            job=spec,
            final_model_sha256=model_sha256,
            now=when,
            collateral=source,
            insecure_at_attestation_time=insecure_at_attestation_time,
        )
    except AttestationError as exc:
        typer.echo(f"attestation refused: {type(exc).__name__}: {exc}", err=True)
        if isinstance(exc, CollateralExpired) and source is None:
            typer.echo(
                "the collateral embedded in the file has expired: judge the quote with current collateral "
                "(--collateral FILE or --pccs-url URL), which also shows a TCB revoked since",
                err=True,
            )
        raise typer.Exit(ExitCode.ATTESTATION_REFUSED) from exc
    except ConfigError as exc:  # e.g. a policy that names no enclave at all
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except EnclaveFLError as exc:
        typer.echo(f"refused: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from exc
    judged = "when the node was attested (INSECURE)" if when is None else f"{_iso(when)} (--now)" if now else "now"
    _report(provenance, job_checked=spec is not None, model_checked=model is not None, judged=judged)


def _iso(when: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(when, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _collateral_source(collateral: Path | None, pccs_url: str | None) -> CollateralSource | None:
    from enclavefl.tee.collateral import FileCollateralSource
    from enclavefl.tee.verify.pccs import PccsCollateralSource

    if collateral is not None:
        if not collateral.is_file():
            raise ConfigError(f"--collateral {collateral}: no such file")
        return FileCollateralSource(collateral)
    if pccs_url is not None:
        try:
            return PccsCollateralSource(pccs_url)
        except ValueError as exc:
            raise ConfigError(f"--pccs-url: {exc}") from None
    return None


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


def _report(provenance: Provenance, *, job_checked: bool, model_checked: bool, judged: str) -> None:
    from enclavefl.owner.notices import describe_enclave

    typer.echo(f"{describe_enclave(provenance.enclave)}; evidence judged {judged}")
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

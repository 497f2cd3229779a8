"""`enclavefl attest`: verify a DCAP quote offline and show the claims and the policy's verdict.

Imports beyond typer happen inside the command, so `enclavefl --help` stays fast (tests/cli/test_cli_imports.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from enclavefl.cli.when import NOW_HELP, parse_verification_time
from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import ConfigError

if TYPE_CHECKING:
    from enclavefl.tee.verify.policy import AttestationPolicy
    from enclavefl.tee.verify.verified import VerifiedEnclave

app = typer.Typer(
    help="Remote attestation: verify DCAP quotes (SGX, TDX) against collateral and a policy.",
    no_args_is_help=True,
)


@app.callback()
def _attest() -> None:
    """Remote attestation: verify DCAP quotes (SGX, TDX) against collateral and a policy."""


@app.command(epilog=exit_status_help(ExitCode.ATTESTATION_REFUSED, ExitCode.NO_VERDICT))
def verify(
    quote: Annotated[Path, typer.Argument(help="Raw DCAP quote file.", exists=True, dir_okay=False)],
    collateral: Annotated[
        Path,
        typer.Option(help="dcap-qvl QuoteCollateralV3 JSON for the quote.", exists=True, dir_okay=False),
    ],
    policy: Annotated[
        Path | None,
        typer.Option(help="Attestation policy TOML (see enclavefl.tee.verify.policy).", exists=True, dir_okay=False),
    ] = None,
    now: Annotated[str | None, typer.Option(help=NOW_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Verify QUOTE with its collateral at NOW (default: the present), then apply the policy.

    Exit 0 only when the quote verifies AND the policy accepts it; a refusal prints the error class and message.
    """
    from enclavefl.api.attestation import examine_quote
    from enclavefl.tee.verify.policy_file import load_policy

    try:
        when = parse_verification_time(now)
        chosen = load_policy(policy) if policy is not None else None
        if chosen is not None:
            chosen.require_usable()
        verdict = examine_quote(quote.read_bytes(), collateral.read_text("utf-8"), policy=chosen, now=when)
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        _print_usage_error(exc, as_json)
        raise typer.Exit(ExitCode.CONFIG) from exc
    _report(verdict.claims, verdict.error, chosen_policy=chosen, now=when, as_json=as_json)
    if verdict.error is not None:
        raise typer.Exit(ExitCode.ATTESTATION_REFUSED)
    raise typer.Exit(ExitCode.OK if verdict.accepted else ExitCode.NO_VERDICT)


def _claims_dict(claims: VerifiedEnclave) -> dict[str, object]:
    def hex_or_none(value: bytes | None) -> str | None:
        return None if value is None else value.hex()

    return {
        "tee": str(claims.tee),
        "mrenclave": hex_or_none(claims.mrenclave),
        "mrsigner": hex_or_none(claims.mrsigner),
        "isv_prod_id": claims.isv_prod_id,
        "isv_svn": claims.isv_svn,
        "mr_td": hex_or_none(claims.mr_td),
        "rtmrs": None if claims.rtmrs is None else [r.hex() for r in claims.rtmrs],
        "debug": claims.debug,
        "tcb_status": claims.tcb_status,
        "advisory_ids": list(claims.advisory_ids),
        "report_data": claims.report_data.hex(),
        "simulated": claims.simulated,
        "collateral_issued_at": claims.collateral_issued_at,
    }


def _verdict(claims: VerifiedEnclave | None, error: Exception | None, policy: AttestationPolicy | None) -> str:
    if error is not None:
        return f"REFUSED: {type(error).__name__}: {error}"
    if policy is None:
        return "no policy given: claims verified, nothing accepted"
    assert claims is not None
    return "ACCEPTED by the policy" + (" (INSECURE simulated evidence)" if claims.simulated else "")


def _report(
    claims: VerifiedEnclave | None,
    error: Exception | None,
    *,
    chosen_policy: AttestationPolicy | None,
    now: int,
    as_json: bool,
) -> None:
    verdict = _verdict(claims, error, chosen_policy)
    if as_json:
        doc = {
            "now": now,
            "verified": claims is not None,
            "accepted": error is None and chosen_policy is not None,
            "claims": None if claims is None else _claims_dict(claims),
            "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
            "verdict": verdict,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    if claims is not None:
        table = Table(title=f"verified claims at now={now}", show_header=False)
        table.add_column("claim", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key, value in _claims_dict(claims).items():
            if value is not None:
                shown = ", ".join(value) if isinstance(value, list) else str(value)
                table.add_row(key, shown)
        console.print(table)
    console.print(verdict, markup=False, highlight=False)


def _print_usage_error(error: Exception, as_json: bool) -> None:
    message = f"{type(error).__name__}: {error}"
    if as_json:
        typer.echo(json.dumps({"usage_error": message}))
    else:
        typer.echo(f"usage error: {message}", err=True)

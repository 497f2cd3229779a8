"""What every `job` command that talks to the node shares: its options, attesting and joining, and errors.

session = connect(node, job, policy, key, cert, state, pccs_url, no_state)   # exits 2, 3 or 4 with one line
digest = call(lambda: session.submit(model))                      # refusals: one line and their status
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import AttestationError, ConfigError, EnclaveFLError

if TYPE_CHECKING:  # the owner modules reach numpy and grpc: each command imports what it uses
    from enclavefl.api.model_owner import ModelOwnerClient

T = TypeVar("T")
TALKS_TO_NODE = (ExitCode.ATTESTATION_REFUSED, ExitCode.REFUSED)  # what every command that connects can end with

NodeOpt = Annotated[str, typer.Option("--node", help="The node's HOST:PORT.")]
JobOpt = Annotated[Path, typer.Option("--job", help="The job spec (TOML) the node must attest.")]
PolicyOpt = Annotated[Path, typer.Option("--policy", help="Attestation policy (TOML) the node must satisfy.")]
KeyOpt = Annotated[Path, typer.Option("--key", help="The model owner's private key (PEM).")]
CertOpt = Annotated[Path, typer.Option("--cert", help="The model owner's certificate (PEM), as in the job spec.")]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Where the model owner remembers the receipts it verified, so a node that comes back with an older "
        "chain (restarted from an old checkpoint) is refused as a rollback (default: "
        "$XDG_STATE_HOME/enclavefl/model-owners/<certificate fingerprint>, else ~/.local/state/...).",
    ),
]
NoStateOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-no-state",
        help="INSECURE: remember no receipts; a node restarted from older state is not recognised as a rollback.",
    ),
]
PccsOpt = Annotated[
    str | None,
    typer.Option("--pccs-url", help="Verify the node's quote with collateral from this PCCS, not the node's own."),
]


def connect(
    node: str,
    job: Path,
    policy: Path,
    key: Path,
    cert: Path,
    state: Path | None,
    pccs_url: str | None,
    insecure_no_state: bool = False,
) -> ModelOwnerClient:
    """Attest and join through the API; files that do not load exit with CONFIG, refusals with their code."""
    from enclavefl.api.model_owner import ModelOwnerClient

    def connect_and_join() -> ModelOwnerClient:
        return ModelOwnerClient.connect(
            node,
            job=job,
            policy=policy,
            key=key,
            cert=cert,
            state_dir=state,
            insecure_no_state=insecure_no_state,
            pccs_url=pccs_url,
            on_line=lambda line: typer.echo(line, err=True),
        )

    try:
        return call(connect_and_join, config_errors=True)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc


def call(fn: Callable[[], T], *, config_errors: bool = False) -> T:
    try:
        return fn()
    except ConfigError as exc:
        if not config_errors:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except AttestationError as exc:
        typer.echo(f"attestation refused, nothing was sent: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.ATTESTATION_REFUSED) from exc
    except EnclaveFLError as exc:
        from enclavefl.owner.notices import describe_stop

        typer.echo(f"refused: {describe_stop(exc)}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from exc

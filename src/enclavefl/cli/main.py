"""The `enclavefl` command. Thin: parse arguments, call roles, print."""

from __future__ import annotations

import signal
import sys
from importlib.metadata import PackageNotFoundError, version
from types import FrameType
from typing import Annotated, NoReturn

import typer

from enclavefl.cli import attest, data_owner, demo, digits, enclave, job, node, receipts
from enclavefl.core.exit_codes import EXIT_MEANINGS, ExitCode, exit_status_help

app = typer.Typer(
    name="enclavefl",
    help=(
        "Federated learning whose aggregator runs inside an attested SGX enclave (Gramine).\n\n"
        "Start with `enclavefl demo` (the seed federation with a simulated enclave), then "
        "`enclavefl demo --processes` (the same parties as separate processes over TLS); docs/tutorial.md."
    ),
    epilog=exit_status_help(*EXIT_MEANINGS) + "\n\nEach command's --help lists the statuses it uses (docs/cli.md).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("demo", epilog=exit_status_help(ExitCode.FAILED))(demo.demo)
app.add_typer(attest.app, name="attest", help="Verify DCAP quotes against a data owner's policy.")
app.add_typer(enclave.app, name="enclave", help="Package the aggregator for Gramine-SGX and read its measurements.")
app.command("digits", epilog=exit_status_help())(digits.digits)
app.add_typer(node.app, name="node", help="Run the aggregator node (the secure worker); write its policy.")
app.add_typer(data_owner.app, name="data-owner", help="A data owner: verify the node, train locally, upload.")
app.add_typer(job.app, name="job", help="The model owner: write the job, submit the model, watch, download.")
app.add_typer(receipts.app, name="receipts", help="Anyone: check offline that a model came from an attested enclave.")


def installed_version() -> str:
    try:
        return version("enclavefl")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"enclavefl {installed_version()}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Federated learning whose aggregator runs inside an attested SGX enclave (Gramine)."""


def _interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    # Ctrl-C: one line and the documented status instead of a traceback or click's bare "Aborted!" (exit 1).
    print(f"\ninterrupted: exit {int(ExitCode.INTERRUPTED)}", file=sys.stderr)
    raise SystemExit(ExitCode.INTERRUPTED)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    try:
        app()
    except OSError as exc:  # a file or directory the user named cannot be read or written: their input, no traceback
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: {type(exc).__name__}:{where}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG) from None


if __name__ == "__main__":
    main()

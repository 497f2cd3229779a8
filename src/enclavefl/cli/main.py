"""The `enclavefl` command. Thin: parse arguments, call roles, print."""

from __future__ import annotations

import importlib
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from enclavefl.core.exit_codes import EXIT_MEANINGS, ExitCode, exit_status_help


@dataclass(frozen=True, slots=True, kw_only=True)
class LazyCommand:
    """A subcommand whose module is imported only when it runs (or its own --help is asked for): `enclavefl
    --help` and `enclavefl job watch` do not pay for the imports of `node`, `demo` or `digits`."""

    module: str  # enclavefl.cli.<module>
    attribute: str  # its typer.Typer ("app") or its command function
    help: str  # the one line `enclavefl --help` lists
    epilog: tuple[ExitCode, ...] | None = None  # a function command's exit statuses (exit_status_help)

    def load(self, name: str) -> Any:
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)  # get_command would add completion options a second time
            group.name, group.help = name, self.help  # as `add_typer(..., help=...)` would set them
            return group
        single = typer.Typer(add_completion=False)
        single.command(name, epilog=exit_status_help(*(self.epilog or ())))(target)
        return typer.main.get_command(single)


LAZY_COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand(
        module="enclavefl.cli.demo",
        attribute="demo",
        epilog=(ExitCode.FAILED,),
        help="Run the seed scenario (Bob, Alice and a secure worker) with the INSECURE simulated enclave.",
    ),
    "digits": LazyCommand(
        module="enclavefl.cli.digits",
        attribute="digits",
        epilog=(),
        help="Split scikit-learn's digits among data owners, train federated through an INSECURE simulated enclave.",
    ),
    "simulate": LazyCommand(
        module="enclavefl.cli.simulate",
        attribute="simulate",
        epilog=(ExitCode.FAILED, ExitCode.CONFIG),
        help="Simulate many virtual data owners from your task and a data function, in process or on Ray.",
    ),
    "attest": LazyCommand(
        module="enclavefl.cli.attest", attribute="app", help="Verify DCAP quotes against a data owner's policy."
    ),
    "enclave": LazyCommand(
        module="enclavefl.cli.enclave",
        attribute="app",
        help="Package the aggregator for Gramine-SGX and read its measurements.",
    ),
    "node": LazyCommand(
        module="enclavefl.cli.node",
        attribute="app",
        help="Run the aggregator node (the secure worker); write its policy.",
    ),
    "data-owner": LazyCommand(
        module="enclavefl.cli.data_owner",
        attribute="app",
        help="A data owner: verify the node, train locally, upload.",
    ),
    "job": LazyCommand(
        module="enclavefl.cli.job",
        attribute="app",
        help="The model owner: write the job, submit the model, watch, download.",
    ),
    "task": LazyCommand(
        module="enclavefl.cli.task",
        attribute="app",
        help="Your task: write the initial model it builds.",
    ),
    "receipts": LazyCommand(
        module="enclavefl.cli.receipts",
        attribute="app",
        help="Anyone: check offline that a model came from an attested enclave.",
    ),
}


class LazyGroup(TyperGroup):
    """The root command: lists LAZY_COMMANDS by name and help line, imports one only to run it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, lazy in LAZY_COMMANDS.items():
            self.commands.setdefault(name, TyperCommand(name=name, help=lazy.help))  # a placeholder for listings
        self._loaded: set[str] = set()

    def load_command(self, name: str) -> Any:
        """The real command `name` (its module imported on first use)."""
        if name in LAZY_COMMANDS and name not in self._loaded:
            self.commands[name] = LAZY_COMMANDS[name].load(name)
            self._loaded.add(name)
        return self.commands.get(name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and name in LAZY_COMMANDS:
            command = self.load_command(name)
        return name, command, rest


app = typer.Typer(
    cls=LazyGroup,
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


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

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

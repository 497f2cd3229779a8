"""The `enclavefl` command. Thin: parse arguments, call roles, print."""

from __future__ import annotations

import typer

from enclavefl.cli import attest, demo, enclave

app = typer.Typer(
    name="enclavefl",
    help=(
        "Federated learning whose aggregator runs inside an attested SGX enclave (Gramine).\n\n"
        "Start with `enclavefl demo` (the seed federation with a simulated enclave)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo.demo)
app.add_typer(attest.app, name="attest", help="Verify DCAP quotes against a data owner's policy.")
app.add_typer(enclave.app, name="enclave", help="Package the aggregator for Gramine-SGX and read its measurements.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The `enclavefl` command. Thin: parse arguments, call roles, print."""

from __future__ import annotations

import typer

from enclavefl.cli import attest, data_owner, demo, digits, enclave, job, node, receipts

app = typer.Typer(
    name="enclavefl",
    help=(
        "Federated learning whose aggregator runs inside an attested SGX enclave (Gramine).\n\n"
        "Start with `enclavefl demo` (the seed federation with a simulated enclave), then "
        "`enclavefl demo --processes` (the same parties as separate processes over TLS); docs/tutorial.md."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo.demo)
app.add_typer(attest.app, name="attest", help="Verify DCAP quotes against a data owner's policy.")
app.add_typer(enclave.app, name="enclave", help="Package the aggregator for Gramine-SGX and read its measurements.")
app.command("digits")(digits.digits)
app.add_typer(node.app, name="node", help="Run the aggregator node (the secure worker); write its policy.")
app.add_typer(data_owner.app, name="data-owner", help="A data owner: verify the node, train locally, upload.")
app.add_typer(job.app, name="job", help="The model owner: write the job, submit the model, watch, download.")
app.add_typer(receipts.app, name="receipts", help="Anyone: check offline that a model came from an attested enclave.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""`enclavefl demo`: the seed federation (Bob, Alice and a secure worker), end to end."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import EnclaveFLError

if TYPE_CHECKING:  # the demos import torch: only the command itself loads them
    from enclavefl.core.messages import RoundSummary
    from enclavefl.demos.seed import SeedEvaluation

console = Console(soft_wrap=True)  # piped output keeps each line (and each hash) whole
# Mirrors enclavefl.demos.seed.SEED_ROUNDS (which imports torch); tests/cli/test_cli_imports.py checks they agree.
SEED_ROUNDS = 10
NODE_LINES_SHOWN = ("node listening", "job ", "error")


def demo(
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds to run.")] = SEED_ROUNDS,
    seed: Annotated[int, typer.Option(help="torch seed for the initial model.")] = 0,
    platform_dir: Annotated[
        Path | None,
        typer.Option(help="Directory of the simulated SGX platform (default: a fresh temporary one)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide the data owners' local losses.")] = False,
    processes: Annotated[
        bool,
        typer.Option(
            "--processes",
            help="Run every party as its own OS process (node, Bob, Alice; this process is the model owner), "
            "talking gRPC over TLS on loopback.",
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(help="--processes: directory for the parties' files (default: a fresh temporary one)."),
    ] = None,
    masked: Annotated[
        bool,
        typer.Option(
            "--masked",
            help="Masked mode (secure aggregation inside the enclave): Bob and Alice upload clipped, fixed-point, "
            "pairwise-masked updates; the enclave sees only their sum. Same final loss within the fixed-point "
            "bound. With --processes too.",
        ),
    ] = False,
) -> None:
    """Run the seed scenario (Bob, Alice and a secure worker) with the INSECURE simulated enclave.

    In one process by default; with --processes every party is its own process (`enclavefl node serve`,
    `enclavefl data-owner run` for Bob and for Alice, and this process as the model owner) talking gRPC over
    TLS on loopback, with the same final model.

    Bob holds [[0,0],[0,1]] -> [0,0] and Alice [[1,0],[1,1]] -> [1,1]. Each round both verify nothing new
    (they attested the secure worker once, before their first upload), start from the global model, take
    5 SGD steps (lr 0.1, sum of squared errors) and upload; the secure worker averages the two models.
    Bob and Alice each print their own local losses; the model owner sees only aggregated numbers.
    """
    from enclavefl.demos.seed import run_seed

    logging.getLogger("enclavefl").setLevel(logging.ERROR)
    console.print(
        insecure_banner(),
        soft_wrap=False,  # the console keeps piped lines whole; a panel must wrap, or it shows its first line only
    )
    if processes:
        _demo_processes(
            rounds=rounds, seed=seed, quiet=quiet, workdir=workdir, platform_dir=platform_dir, masked=masked
        )
        return
    local_lines: list[str] = []
    summaries: list[RoundSummary] = []
    with _progress() as progress:
        task_id = progress.add_task("rounds", total=rounds, loss="")

        def on_round(summary: RoundSummary) -> None:
            summaries.append(summary)
            loss = summary.metrics.get("train_loss")
            progress.update(task_id, advance=1, loss=f"aggregated train loss {loss:.4f}" if loss is not None else "")

        def report(line: str) -> None:
            local_lines.append(line)
            if not quiet:
                progress.console.print(escape(line), style="dim")  # "[bob] ..." is text, not rich markup

        result, evaluation = run_seed(
            seed=seed, rounds=rounds, platform_dir=platform_dir, on_round=on_round, report=report, masked=masked
        )

    _print_evaluation(evaluation)
    console.print(
        f"secure worker backend: [bold]{result.tee_backend}[/]"
        + (" [red](INSECURE simulation)[/]" if result.tee_insecure else "")
        + f"; rounds: {len(result.rounds)}; contributions per round: "
        + ", ".join(str(s.contributions) for s in result.rounds)
    )
    console.print(f"receipt chain: {len(result.receipts)} signed receipts verified")
    if result.rejections:
        console.print(f"refused updates: {dict(result.rejections)}")
    if masked:
        console.print("masked mode: the enclave received only masked updates and unmasked their sum")
    console.print(f"final model weights digest: {result.final_model.sha256().hex()}", soft_wrap=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]federated rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _demo_processes(
    *, rounds: int, seed: int, quiet: bool, workdir: Path | None, platform_dir: Path | None, masked: bool = False
) -> None:
    from enclavefl.demos.process_federation import ChildProcessFailed
    from enclavefl.demos.seed_processes import run_seed_processes

    with tempfile.TemporaryDirectory(prefix="enclavefl-demo-") as tmp:
        base = workdir or Path(tmp)
        with _progress() as progress:
            task_id = progress.add_task("rounds", total=rounds, loss="")

            def on_round(summary: RoundSummary) -> None:
                loss = summary.metrics.get("train_loss")
                text = f"aggregated train loss {loss:.4f}" if loss is not None else ""
                progress.update(task_id, advance=1, loss=text)

            def on_line(name: str, line: str) -> None:
                if quiet or (name == "node" and not line.startswith(NODE_LINES_SHOWN)):
                    return  # the node's round lines are the progress bar; its INSECURE banner is shown above
                progress.console.print(escape(line if line.startswith("[") else f"[{name}] {line}"), style="dim")

            try:
                result = run_seed_processes(
                    workdir=base,
                    seed=seed,
                    rounds=rounds,
                    platform_dir=platform_dir,
                    on_round=on_round,
                    on_line=on_line,
                    masked=masked,
                )
            except (ChildProcessFailed, EnclaveFLError) as exc:
                console.print(f"[red]the multi-process demo failed:[/] {type(exc).__name__}: {escape(str(exc))}")
                raise typer.Exit(ExitCode.FAILED) from exc
        run = result.run
        _print_evaluation(result.evaluation)
        console.print(
            "secure worker backend: [bold]insecure-simulation[/] [red](INSECURE simulation)[/], a separate process at "
            f"{run.address}; rounds: {len(run.summaries)}; contributions per round: "
            + ", ".join(str(s.contributions) for s in run.summaries)
        )
        console.print(f"receipt chain: {len(run.final.receipts)} signed receipts verified by the model owner")
        if masked:
            console.print("masked mode: the enclave received only masked updates and unmasked their sum")
        console.print(f"final model weights digest: {run.final.weights.sha256().hex()}", soft_wrap=True)
        if workdir is not None:
            final_file = workdir / "final.safetensors"
            file_sha256 = hashlib.sha256(final_file.read_bytes()).hexdigest()
            console.print(f"wrote {final_file} (file sha256 {file_sha256})", soft_wrap=True)
            console.print(f"the parties' files (job.toml, policy.toml, keys, receipts.json): {workdir}")


def insecure_banner() -> Panel:
    """The demo's INSECURE banner: printed with soft_wrap=False, so that it wraps whole at any width."""
    return Panel(
        "[bold red]INSECURE SIMULATION[/]: the secure worker runs in a simulated enclave. Its DCAP quote is "
        "real-format and verified by dcap-qvl, but signed by a local test hierarchy: it proves the protocol, "
        "not confidentiality. Use `--tee gramine` on SGX hardware for a real enclave.",
        title="enclavefl demo",
    )


def _print_evaluation(evaluation: SeedEvaluation) -> None:
    table = Table(title="model owner: final model on the seed data")
    table.add_column("input")
    table.add_column("prediction", justify="right")
    table.add_column("target", justify="right")
    inputs = ["[0, 0]", "[0, 1]", "[1, 0]", "[1, 1]"]
    for x, p, t in zip(inputs, evaluation.predictions, evaluation.targets, strict=True):
        table.add_row(x, f"{p:.4f}", f"{t:.0f}")
    console.print(table)
    console.print(f"final loss (sum of squared errors): [bold]{evaluation.loss:.4f}[/]")

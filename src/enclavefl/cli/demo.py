"""`enclavefl demo`: the seed federation (Bob, Alice and a secure worker), end to end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from enclavefl.core.messages import RoundSummary
from enclavefl.demos.seed import SEED_ROUNDS, run_seed

console = Console()


def demo(
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds to run.")] = SEED_ROUNDS,
    seed: Annotated[int, typer.Option(help="torch seed for the initial model.")] = 0,
    platform_dir: Annotated[
        Path | None,
        typer.Option(help="Directory of the simulated SGX platform (default: a fresh temporary one)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide the data owners' local losses.")] = False,
) -> None:
    """Run the seed scenario in one process with the INSECURE simulated enclave.

    Bob holds [[0,0],[0,1]] -> [0,0] and Alice [[1,0],[1,1]] -> [1,1]. Each round both verify nothing new
    (they attested the secure worker once, before their first upload), start from the global model, take
    5 SGD steps (lr 0.1, sum of squared errors) and upload; the secure worker averages the two models.
    Bob and Alice each print their own local losses; the model owner sees only aggregated numbers.
    """
    logging.getLogger("enclavefl").setLevel(logging.ERROR)
    console.print(
        Panel(
            "[bold red]INSECURE SIMULATION[/]: the secure worker runs in a simulated enclave. Its DCAP quote is "
            "real-format and verified by dcap-qvl, but signed by a local test hierarchy: it proves the protocol, "
            "not confidentiality. Use `--tee gramine` on SGX hardware for a real enclave.",
            title="enclavefl demo",
        )
    )
    local_lines: list[str] = []
    summaries: list[RoundSummary] = []
    with Progress(
        TextColumn("[bold]federated rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task_id = progress.add_task("rounds", total=rounds, loss="")

        def on_round(summary: RoundSummary) -> None:
            summaries.append(summary)
            loss = summary.metrics.get("train_loss")
            progress.update(task_id, advance=1, loss=f"aggregated train loss {loss:.4f}" if loss is not None else "")

        def report(line: str) -> None:
            local_lines.append(line)
            if not quiet:
                progress.console.print(f"[dim]{line}[/]")

        result, evaluation = run_seed(seed=seed, rounds=rounds, platform_dir=platform_dir, on_round=on_round,
                                      report=report)

    table = Table(title="model owner: final model on the seed data")
    table.add_column("input")
    table.add_column("prediction", justify="right")
    table.add_column("target", justify="right")
    inputs = ["[0, 0]", "[0, 1]", "[1, 0]", "[1, 1]"]
    for x, p, t in zip(inputs, evaluation.predictions, evaluation.targets, strict=True):
        table.add_row(x, f"{p:.4f}", f"{t:.0f}")
    console.print(table)
    console.print(f"final loss (sum of squared errors): [bold]{evaluation.loss:.4f}[/]")
    console.print(
        f"secure worker backend: [bold]{result.tee_backend}[/]"
        + (" [red](INSECURE simulation)[/]" if result.tee_insecure else "")
        + f"; rounds: {len(result.summaries)}; contributions per round: "
        + ", ".join(str(s.contributions) for s in result.summaries)
    )
    if result.rejections:
        console.print(f"refused updates: {dict(result.rejections)}")
    console.print(f"final model sha256: {result.final_model.sha256().hex()}")

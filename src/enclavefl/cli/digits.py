"""`enclavefl digits`: the digits federation (5 owners, Dirichlet label skew), with DP, robust rules, attacks."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from enclavefl.errors import EnclaveFLError

if TYPE_CHECKING:  # the demo imports torch, scikit-learn and matplotlib: only the command loads it
    from enclavefl.demos.digits import Attack, RoundRecord

console = Console(soft_wrap=True)
# Mirror enclavefl.demos.digits.DP_DELTA and enclavefl.enclave.strategies.KNOWN (torch, dp-accounting behind
# them); tests/cli/test_cli_imports.py checks they agree.
DP_DELTA = 1e-5
KNOWN_STRATEGIES = (
    "fedavg",
    "median",
    "trimmed_mean",
    "krum",
    "multikrum",
    "centered_clipping",
    "fedavgm",
    "fedadam",
    "fedyogi",
    "fedadagrad",
)
app = typer.Typer(help="The digits federation: accuracy per round against a centralized baseline.")


@app.callback(invoke_without_command=True)
def digits(
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 30,
    owners: Annotated[int, typer.Option(min=2, help="Data owners sharing the digits.")] = 5,
    alpha: Annotated[float, typer.Option(min=0.01, help="Dirichlet concentration of the label skew.")] = 0.5,
    strategy: Annotated[str, typer.Option(help=f"Aggregation: {', '.join(KNOWN_STRATEGIES)}.")] = "fedavg",
    select: Annotated[
        int | None, typer.Option(help="multikrum: updates (bucket means) averaged (default: their number - 1).")
    ] = None,
    byzantine: Annotated[
        int | None, typer.Option(min=0, help="krum/multikrum: f tolerated (default 1; needs 2f + 3 inputs).")
    ] = None,
    bucket_size: Annotated[
        int | None,
        typer.Option(min=1, help="Robust rules: run on means of random buckets of this many updates (>= K = 3)."),
    ] = None,
    tau: Annotated[
        float | None,
        typer.Option(
            help="centered_clipping: L2 radius around last round's step beyond which an update is cut "
            "(default 0.25, measured for this demo in docs/robustness.md)."
        ),
    ] = None,
    dp_epsilon: Annotated[
        float | None, typer.Option(help=f"Central DP: target epsilon at delta={DP_DELTA:g} over all rounds.")
    ] = None,
    clip_norm: Annotated[float, typer.Option(min=1e-6, help="DP: L2 clip norm of each update's delta.")] = 1.0,
    attack: Annotated[str, typer.Option(help="One owner misbehaves: none, scale (x10) or signflip (x-4).")] = "none",
    attacker: Annotated[int, typer.Option(help="Which owner attacks: its index, 0-based (-1: the last).")] = -1,
    local_steps: Annotated[int, typer.Option(min=1, help="Local SGD steps per round.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the data split and the initial model.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for digits.json and digits.png.")] = Path("digits-out"),
) -> None:
    """Split scikit-learn's digits among data owners, train federated through an INSECURE simulated enclave.

    Prints accuracy per round (the model owner's test set and the owners' federated evaluation), writes
    OUT/digits.json and OUT/digits.png, and compares with a centralized model trained on the pooled data.
    """
    from enclavefl.aggregation.bucketing import bucket_count
    from enclavefl.demos.digits import DigitsConfig, plot_report, run_digits

    if attack not in ("none", "scale", "signflip"):
        raise typer.BadParameter("attack must be none, scale or signflip", param_hint="--attack")
    if not -owners <= attacker < owners:
        raise typer.BadParameter(f"attacker must lie in [{-owners}, {owners - 1}]", param_hint="--attacker")
    attack_kind: Attack = "none" if attack == "none" else ("scale" if attack == "scale" else "signflip")
    params: dict[str, object] = {}
    if byzantine is not None:
        params["byzantine"] = byzantine
    if strategy == "multikrum":
        inputs = owners if bucket_size is None else bucket_count(owners, bucket_size)  # bucket means when bucketed
        params["select"] = select if select is not None else inputs - 1
    if strategy == "centered_clipping":
        params["tau"] = tau if tau is not None else 0.25
    config = DigitsConfig(
        rounds=rounds,
        owners=owners,
        alpha=alpha,
        strategy=strategy,
        strategy_params=params,
        bucket_size=bucket_size,
        dp_epsilon=dp_epsilon,
        clip_norm=clip_norm,
        attack=attack_kind,
        attacker=attacker,
        local_steps=local_steps,
        seed=seed,
    )
    logging.getLogger("enclavefl").setLevel(logging.ERROR)
    console.print(
        Panel(
            "[bold red]INSECURE SIMULATION[/]: the secure worker runs in a simulated enclave.", title="enclavefl digits"
        )
    )
    bucketed = "" if bucket_size is None else f" on buckets of {bucket_size}"
    table = Table(title=f"digits: {owners} owners, Dirichlet({alpha:g}), {strategy}{bucketed}")
    for column in ("round", "test acc %", "fed. eval acc %", "test loss", "epsilon"):
        table.add_column(column, justify="right")

    status = console.status(f"training: round 1/{rounds}...")

    def on_round(r: RoundRecord) -> None:
        status.update(f"training: round {r.round}/{rounds} done, test accuracy {100 * r.test_accuracy:.1f}%")
        fed = r.federated.get("accuracy")
        table.add_row(
            str(r.round),
            f"{100 * r.test_accuracy:.1f}",
            "-" if fed is None else f"{100 * fed:.1f}",
            f"{r.test_loss:.3f}",
            "-" if r.epsilon is None else f"{r.epsilon:.3f}",
        )

    with warnings.catch_warnings(), status:
        warnings.simplefilter("ignore")
        try:
            report = run_digits(config, on_round=on_round)
        except EnclaveFLError as exc:  # e.g. ReleaseBelowK: krum or the median with the demo's K = 3
            console.print(f"[red]refused:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(2) from exc
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "digits.json").write_text(report.to_json())
    plot_report(report, out / "digits.png")
    gap = 100 * (report.baseline_accuracy - report.final_accuracy)
    console.print(
        f"federated {100 * report.final_accuracy:.1f}% after {len(report.rounds)} rounds; centralized baseline "
        f"{100 * report.baseline_accuracy:.1f}% (gap {gap:.1f} points)"
    )
    if report.noise_multiplier is not None:
        sigma = report.noise_multiplier
        console.print(f"DP: noise multiplier {sigma:.3f}, clip norm {clip_norm:g}, delta {DP_DELTA:g}")
    if report.stopped_early:
        console.print(f"[yellow]stopped early:[/] {report.stopped_early}")
    console.print(f"wrote {out / 'digits.json'} and {out / 'digits.png'}")

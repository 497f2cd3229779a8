"""`enclavefl job plot`: the curves of a job as a PNG, from the model owner's round records.

    enclavefl job watch $MO --json > rounds.jsonl        # or --record rounds.jsonl
    enclavefl job plot rounds.jsonl --out curves.png

Registered on the `job` group by cli/job.py. matplotlib is the `examples` extra; without it the command says so
in one line (status 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import ConfigError

PLOT_EPILOG = exit_status_help()


def plot(
    records: Annotated[Path, typer.Argument(help="Round records (JSON lines) from `job watch --json` or --record.")],
    out: Annotated[Path, typer.Option("--out", help="The PNG to write.")] = Path("curves.png"),
) -> None:
    """Draw the job's curves as a PNG: losses, the other metrics, and contributions per round.

    Losses (`train/train_loss`, `central/loss`, ...) share one panel, other metrics (accuracy, ...) another; the
    third shows how many updates each released round averaged.
    """
    from enclavefl.owner.metrics_history import read_history, series

    try:
        history = read_history(records)
        if not history:
            raise ConfigError(f"{records}: holds no round record yet")
        if not out.absolute().parent.is_dir():
            raise ConfigError(f"--out {out}: its directory does not exist")
        found = series(history)
        _draw(found, [(r.round, r.contributions) for r in history], out)
    except ConfigError as exc:
        typer.echo(f"error: ConfigError: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    typer.echo(f"wrote {out}: {len(history)} rounds, {len(found)} series")


def _draw(found: dict[str, list[tuple[int, float]]], counts: list[tuple[int, int]], out: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("job plot needs matplotlib (pip install 'enclavefl[examples]')") from None
    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    losses = {k: v for k, v in found.items() if "loss" in k}
    others = {k: v for k, v in found.items() if "loss" not in k}
    panels = [("loss", losses), ("metric", others)]
    panels = [(label, group) for label, group in panels if group]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(5.2 * (len(panels) + 1), 4.0), squeeze=False)
    for ax, (label, group) in zip(axes[0], panels, strict=False):
        for name, points in sorted(group.items()):
            ax.plot([r for r, _ in points], [v for _, v in points], marker="o", label=name)
        ax.set_xlabel("round")
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    ax = axes[0][-1]
    ax.bar([r for r, _ in counts], [c for _, c in counts], color="#888")
    ax.set_xlabel("round")
    ax.set_ylabel("updates averaged")
    ax.set_title("contributions per round")
    for each in axes[0]:
        each.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)

"""Figure 1 of the FedProx paper on Synthetic(1, 1), through enclavefl's simulated enclave node.

    python examples/fedprox/run.py                          # the full experiment: 200 rounds, 5 runs
    python examples/fedprox/run.py --rounds 20 --out /tmp/fp  # a quick look
    python examples/fedprox/run.py --help

Runs FedAvg and FedProx (mu = 1) with 0% and 90% stragglers, and FedProx with mu = 0 at 90% (stragglers' partial work
kept, no proximal term), each through `enclavefl.simulate`; prints a line per round (global model's training loss and
test accuracy over all 30 devices) and writes the curves as PNG and JSON. Needs matplotlib (`enclavefl[examples]`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

from enclavefl.demos.fedprox import FEDAVG, FEDPROX, FEDPROX_MU0, Curve, Method, paper_train_config, run_method
from enclavefl.demos.fedprox_data import SyntheticFederation, synthetic_federation

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="examples/fedprox/run.py",
        description=(
            "Reproduce the qualitative result of figure 1 of Li et al., 'Federated Optimization in Heterogeneous "
            "Networks' (MLSys 2020): on Synthetic(alpha, beta) with 90% stragglers, FedAvg (which drops the "
            "stragglers) oscillates or diverges while FedProx (which takes their partial work, with a proximal "
            "term) converges. Each run is a full federation through enclavefl.simulate: 30 data owners, the "
            "paper's local solver (SGD, lr 0.01, batches of 10, 20 epochs), all devices every round."
        ),
        epilog=(
            "The full run (200 rounds, 5 runs) takes about 15-25 minutes on 2 busy cores. docs/fedprox.md explains "
            "the setting, how stragglers are expressed through the public API, and how it differs from the paper."
        ),
    )
    parser.add_argument("--rounds", type=int, default=200, help="rounds per run (default: 200, as the paper)")
    parser.add_argument("--alpha", type=float, default=1.0, help="how much the devices' models differ (default 1)")
    parser.add_argument("--beta", type=float, default=1.0, help="how much the devices' inputs differ (default 1)")
    parser.add_argument("--mu", type=float, default=1.0, help="FedProx's proximal weight (default: 1, the paper's)")
    parser.add_argument("--stragglers", type=float, default=0.9, help="straggler fraction (default: 0.9)")
    parser.add_argument("--epochs", type=int, default=20, help="local epochs of a device that is not slow (20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and the schedule (0)")
    parser.add_argument("--every", type=int, default=1, help="print a progress line every N rounds (default: 1)")
    parser.add_argument(
        "--out", type=Path, default=HERE / "out", help="directory for fedprox-synthetic.png and .json (./out)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 1 or args.every < 1 or args.mu <= 0 or not 0 <= args.stragglers <= 1:
        parser.error("--rounds, --epochs and --every must be >= 1, --mu > 0, --stragglers in [0, 1]")
    return args


def runs(args: argparse.Namespace) -> list[tuple[Method, float]]:
    """The figure's runs: FedAvg and FedProx without stragglers, then FedAvg, FedProx mu=0 and FedProx with them."""
    fedprox = (
        FEDPROX
        if args.mu == FEDPROX.proximal_mu
        else Method(name=f"FedProx (mu={args.mu:g})", proximal_mu=args.mu, drop_stragglers=False)
    )
    calm = [(FEDAVG, 0.0), (fedprox, 0.0)]
    return (
        calm
        if args.stragglers == 0
        else [*calm, (FEDAVG, args.stragglers), (FEDPROX_MU0, args.stragglers), (fedprox, args.stragglers)]
    )


def run_one(
    fed: SyntheticFederation, method: Method, fraction: float, args: argparse.Namespace, platform: str
) -> Curve:
    """One run through enclavefl.simulate, with a progress line every `--every` rounds."""
    label = f"{method.name}, {fraction:.0%} stragglers"
    started = time.monotonic()

    def progress(r: int, loss: float, acc: float) -> None:
        if r % args.every == 0 or r == args.rounds:
            print(
                f"{label}: round {r}/{args.rounds}  training loss {loss:.4f}  test accuracy {acc:.3f}  "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )

    return run_method(
        fed,
        method,
        straggler_fraction=fraction,
        rounds=args.rounds,
        train=dataclasses.replace(paper_train_config(seed=args.seed), local_epochs=args.epochs),
        seed=args.seed,
        on_point=progress,
        platform_dir=platform,
    )


def main(argv: list[str] | None = None) -> list[Curve]:
    args = parse_args(argv)
    fed = synthetic_federation(alpha=args.alpha, beta=args.beta, seed=args.seed)
    counts = fed.sample_counts()
    print(
        f"Synthetic({args.alpha:g}, {args.beta:g}), seed {args.seed}: {len(counts)} devices, {sum(counts)} examples "
        f"(per device: min {min(counts)}, median {sorted(counts)[len(counts) // 2]}, max {max(counts)})",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="enclavefl-fedprox-") as platform:  # one simulated platform for all
        curves = [run_one(fed, method, fraction, args, platform) for method, fraction in runs(args)]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(curves, args, args.out / "fedprox-synthetic.json")
    plot(curves, args, args.out / "fedprox-synthetic.png")
    print(f"done in {time.monotonic() - started:.0f} s; wrote {args.out / 'fedprox-synthetic.png'} and .json")
    for curve in curves:
        print(f"  {summary_line(curve)}")
    return curves


def summary_line(curve: Curve) -> str:
    """Final loss and accuracy, and how much the loss still moves over the last quarter of the rounds."""
    tail = curve.train_loss[-max(2, len(curve.train_loss) // 4) :]
    jumps = [abs(b - a) for a, b in itertools.pairwise(tail)]
    return (
        f"{curve.label:32s} final training loss {curve.train_loss[-1]:.4f}, test accuracy "
        f"{curve.test_accuracy[-1]:.3f}; last {len(tail)} rounds: loss {min(tail):.3f}-{max(tail):.3f}, "
        f"mean |change| per round {sum(jumps) / len(jumps):.4f}"
    )


def write_json(curves: list[Curve], args: argparse.Namespace, path: Path) -> None:
    setting = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    body = {
        "setting": setting,
        "curves": [
            {
                "label": c.label,
                "method": c.method,
                "stragglers": c.straggler_fraction,
                "train_loss": c.train_loss,
                "test_accuracy": c.test_accuracy,
            }
            for c in curves
        ],
    }
    path.write_text(json.dumps(body, indent=1) + "\n")


def plot(curves: list[Curve], args: argparse.Namespace, path: Path) -> None:
    """The paper's layout: one column per straggler fraction, training loss above, test accuracy below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted({c.straggler_fraction for c in curves})
    fig, axes = plt.subplots(2, len(fractions), figsize=(5.2 * len(fractions), 7), squeeze=False, sharex=True)
    colours = {"FedAvg": "tab:green", "FedProx (mu=0)": "tab:blue"}
    for col, fraction in enumerate(fractions):
        for curve in (c for c in curves if c.straggler_fraction == fraction):
            colour = colours.get(curve.method, "tab:red")
            axes[0][col].plot(curve.train_loss, color=colour, lw=1.2, label=curve.method)
            axes[1][col].plot([100 * a for a in curve.test_accuracy], color=colour, lw=1.2, label=curve.method)
        axes[0][col].set(title=f"{fraction:.0%} stragglers", ylabel="training loss (global model)")
        axes[1][col].set(xlabel="round", ylabel="test accuracy (%)", ylim=(0, 100))
        for ax in (axes[0][col], axes[1][col]):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(
        f"Synthetic({args.alpha:g}, {args.beta:g}), 30 devices, E={args.epochs}, lr 0.01, batch 10, all devices "
        f"every round; enclavefl.simulate [INSECURE simulated enclave]",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

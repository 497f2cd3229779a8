"""Regenerate the accuracy tables of docs/privacy.md and docs/robustness.md (about 6 minutes on 2 cores).

    .venv/bin/python examples/digits/make_tables.py > examples/digits/tables.md
"""

from __future__ import annotations

import warnings

from enclavefl.demos.digits import DigitsConfig, run_digits


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def privacy_table() -> None:
    print("| target epsilon (delta=1e-5) | noise multiplier | rounds | clip norm | epsilon spent | accuracy (%) |")
    print("|---|---|---|---|---|---|")
    base = run_digits(DigitsConfig(strategy_params={"weighted": False}))
    print(f"| no DP (unweighted FedAvg) | - | 30 | - | - | {pct(base.final_accuracy)} |")
    for eps in (1000.0, 128.0, 32.0, 8.0, 4.0, 1.0):
        for clip in (0.5, 2.0):
            r = run_digits(DigitsConfig(dp_epsilon=eps, clip_norm=clip))
            spent = r.rounds[-1].epsilon if r.rounds else float("nan")
            print(f"| {eps:g} | {r.noise_multiplier:.3f} | {len(r.rounds)} | {clip:g} | {spent:.3f} | "
                  f"{pct(r.final_accuracy)} |")
    print(f"\ncentralized baseline (no DP): {pct(base.baseline_accuracy)}%\n")


def owners_table() -> None:
    print("| owners | model | rounds | noise multiplier | accuracy no DP (%) | accuracy DP eps=8 (%) |")
    print("|---|---|---|---|---|---|")
    for owners in (5, 50):
        for hidden, rounds in ((64, 30), (16, 10)):
            plain = run_digits(DigitsConfig(owners=owners, hidden=hidden, rounds=rounds, baseline_epochs=0,
                                            strategy_params={"weighted": False}))  # fmt: skip
            dp = run_digits(DigitsConfig(owners=owners, hidden=hidden, rounds=rounds, baseline_epochs=0,
                                         dp_epsilon=8.0, clip_norm=0.5))  # fmt: skip
            print(f"| {owners} | 64-{hidden}-10 | {rounds} | {dp.noise_multiplier:.3f} | "
                  f"{pct(plain.final_accuracy)} | {pct(dp.final_accuracy)} |")


def robustness_table() -> None:
    print("| strategy | clean (%) | 1 of 5 scaled x10 (%) | 1 of 5 sign-flipped x-4 (%) |")
    print("|---|---|---|---|")
    for strategy in ("fedavg", "median", "trimmed_mean", "krum", "multikrum"):
        params: dict[str, object] = {"select": 4} if strategy == "multikrum" else {}
        cells = [pct(run_digits(DigitsConfig(strategy=strategy, strategy_params=params, attack=a)).final_accuracy)
                 for a in ("none", "scale", "signflip")]  # fmt: skip
        print(f"| {strategy} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    robustness_table()
    print()
    privacy_table()
    print()
    owners_table()

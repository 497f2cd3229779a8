"""Regenerate the accuracy tables of docs/privacy.md and docs/robustness.md (about 15 minutes on 2 cores).

    .venv/bin/python examples/digits/make_tables.py > examples/digits/tables.md
    .venv/bin/python examples/digits/make_tables.py robustness alike     # only the robustness tables
    .venv/bin/python examples/digits/make_tables.py robustness-cc        # only FedAvg and centered clipping rows
"""

from __future__ import annotations

import statistics
import sys
import warnings

from enclavefl.demos.digits import Attack, DigitsConfig, run_digits
from enclavefl.errors import ReleaseBelowK


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


# label, strategy, params, bucket_size. The demo's K is 3 (5 owners): rules that could release a value computed
# from fewer than 3 updates are refused (ReleaseBelowK) and printed as such. With 5 owners, buckets of 2 leave 2
# bucket means (of 3 and 2 updates): too few for Krum (it needs 2f + 3 inputs).
ROBUST_ROWS: list[tuple[str, str, dict[str, object], int | None]] = [
    ("fedavg", "fedavg", {}, None),
    ("median", "median", {}, None),
    ("median, buckets of 2", "median", {}, 2),
    ("trimmed_mean (beta 0.2)", "trimmed_mean", {}, None),
    ("trimmed_mean (beta 0.4), buckets of 2", "trimmed_mean", {"beta": 0.4}, 2),
    ("krum (f = 1)", "krum", {}, None),
    ("krum (f = 0), buckets of 2", "krum", {"byzantine": 0}, 2),
    ("multikrum (f = 1, m = 4)", "multikrum", {"select": 4}, None),
    ("multikrum (f = 0, m = 2), buckets of 2", "multikrum", {"byzantine": 0, "select": 2}, 2),
    ("centered_clipping (tau 0.25)", "centered_clipping", {"tau": 0.25}, None),
    ("centered_clipping (tau 0.5)", "centered_clipping", {"tau": 0.5}, None),
]
ATTACKERS = range(5)


def attacked_accuracy(
    row: tuple[str, str, dict[str, object], int | None], attack: Attack, attacker: int = -1, alpha: float = 0.5
) -> float:
    _, strategy, params, bucket_size = row
    config = DigitsConfig(strategy=strategy, strategy_params=params, bucket_size=bucket_size, attack=attack,
                          attacker=attacker, alpha=alpha, baseline_epochs=0)  # fmt: skip
    report = run_digits(config)
    return report.final_accuracy if report.stopped_early is None else float("nan")


def refusal(row: tuple[str, str, dict[str, object], int | None]) -> str | None:
    """The job validator's reason when the row is refused under the demo's K, else None."""
    _, strategy, params, bucket_size = row
    try:
        run_digits(DigitsConfig(strategy=strategy, strategy_params=params, bucket_size=bucket_size, rounds=1,
                                baseline_epochs=0))  # fmt: skip
    except ReleaseBelowK as exc:
        return str(exc)
    return None


def robustness_table(rows: list[tuple[str, str, dict[str, object], int | None]] = ROBUST_ROWS) -> None:
    """Owner 5 attacking (the original setup), then the mean and the worst case over which owner attacks."""
    print(f"clean FedAvg: {pct(run_digits(DigitsConfig()).final_accuracy)}% (the reference of 'within 5 points')\n")
    print("| strategy | clean | owner 5 scaled x10 | owner 5 sign-flipped x-4 | scaled: mean / worst of 5 attackers "
          "| sign-flipped: mean / worst of 5 attackers |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        reason = refusal(row)
        if reason is not None:
            print(f"| {row[0]} | refused: {reason.split(':')[0]} (ReleaseBelowK) | | | | |", flush=True)
            continue
        by_attacker = {a: [attacked_accuracy(row, a, i) for i in ATTACKERS] for a in ("scale", "signflip")}
        cells = [pct(attacked_accuracy(row, "none")), pct(by_attacker["scale"][-1]), pct(by_attacker["signflip"][-1])]
        cells += [f"{pct(statistics.mean(v))} / {pct(min(v))}" for v in by_attacker.values()]
        print(f"| {row[0]} | " + " | ".join(cells) + " |", flush=True)


def alike_table(rows: list[tuple[str, str, dict[str, object], int | None]] = ROBUST_ROWS) -> None:
    """Dirichlet(100), owner 5 attacking, and the worst attacker under sign-flipping."""
    print("| strategy | clean | owner 5 scaled x10 | owner 5 sign-flipped x-4 | sign-flipped: worst of 5 attackers |")
    print("|---|---|---|---|---|")
    for row in rows:
        if row[3] is not None or refusal(row) is not None:
            continue
        flips = [attacked_accuracy(row, "signflip", i, alpha=100.0) for i in ATTACKERS]
        cells = [pct(attacked_accuracy(row, "none", alpha=100.0)), pct(attacked_accuracy(row, "scale", alpha=100.0)),
                 pct(flips[-1]), pct(min(flips))]  # fmt: skip
        print(f"| {row[0]} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    which = set(sys.argv[1:]) or {"robustness", "alike", "privacy", "owners"}
    cc_only = [r for r in ROBUST_ROWS if r[1] in ("fedavg", "centered_clipping")]
    if "robustness" in which or "robustness-cc" in which:
        robustness_table(ROBUST_ROWS if "robustness" in which else cc_only)
        print()
    if "alike" in which or "alike-cc" in which:
        alike_table(ROBUST_ROWS if "alike" in which else cc_only)
        print()
    if "privacy" in which:
        privacy_table()
        print()
    if "owners" in which:
        owners_table()

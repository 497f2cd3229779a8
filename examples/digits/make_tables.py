"""Regenerate the accuracy tables of docs/privacy.md and docs/robustness.md (about 10 minutes on 2 cores).

    .venv/bin/python examples/digits/make_tables.py > examples/digits/tables.md
"""

from __future__ import annotations

import statistics
import warnings

from enclavefl.demos.digits import Attack, DigitsConfig, run_digits


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


# label, strategy, params, bucket_size. With 5 owners, buckets of 2 leave 3 bucket means, so the inner rule must
# tolerate 1 bad input out of 3: trimmed mean needs beta >= 1/3, Krum can only be told f = 0 (it needs 2f + 3 inputs).
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
]
ATTACKERS = range(5)


def attacked_accuracy(row: tuple[str, str, dict[str, object], int | None], attack: Attack, attacker: int = -1) -> float:
    _, strategy, params, bucket_size = row
    config = DigitsConfig(strategy=strategy, strategy_params=params, bucket_size=bucket_size, attack=attack,
                          attacker=attacker, baseline_epochs=0)  # fmt: skip
    return run_digits(config).final_accuracy


def robustness_table() -> None:
    """Owner 5 attacking (the original setup), then the mean and the worst case over which owner attacks."""
    print(f"clean FedAvg: {pct(run_digits(DigitsConfig()).final_accuracy)}% (the reference of 'within 5 points')\n")
    print("| strategy | clean | owner 5 scaled x10 | owner 5 sign-flipped x-4 | scaled: mean / worst of 5 attackers "
          "| sign-flipped: mean / worst of 5 attackers |")
    print("|---|---|---|---|---|---|")
    for row in ROBUST_ROWS:
        by_attacker = {a: [attacked_accuracy(row, a, i) for i in ATTACKERS] for a in ("scale", "signflip")}
        cells = [pct(attacked_accuracy(row, "none")), pct(by_attacker["scale"][-1]), pct(by_attacker["signflip"][-1])]
        cells += [f"{pct(statistics.mean(v))} / {pct(min(v))}" for v in by_attacker.values()]
        print(f"| {row[0]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    robustness_table()
    print()
    privacy_table()
    print()
    owners_table()

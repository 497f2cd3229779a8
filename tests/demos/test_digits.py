"""The digits federation's claims: near-centralized accuracy, honest DP accounting, robustness to one attacker."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from enclavefl.demos.digits import DigitsConfig, DigitsReport, run_digits
from enclavefl.demos.digits_data import load_digits_split
from enclavefl.privacy import DpParams, epsilon_after

ROBUST_ROUNDS = 30


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")


def run(platform: Path, **kw: object) -> DigitsReport:
    return run_digits(DigitsConfig(**kw), platform_dir=platform)  # type: ignore[arg-type]


def test_split_is_deterministic_label_skewed_and_disjoint() -> None:
    a, b = load_digits_split(seed=3), load_digits_split(seed=3)

    hist = np.array(list(a.label_histogram().values()))
    assert a.label_histogram() == b.label_histogram()
    assert hist.sum() == len(a.pooled_train)
    assert (hist.max(axis=0) > 2 * hist.mean(axis=0)).sum() >= 5  # most classes concentrate on one owner
    assert len(a.pooled_train) + len(a.test) + sum(len(o.held_out) for o in a.owners.values()) == 1797


def test_federated_accuracy_is_within_3_points_of_the_centralized_baseline(simulated_platform_dir: Path) -> None:
    report = run(simulated_platform_dir, rounds=30, owners=5, alpha=0.5)

    assert len(report.rounds) == 30
    assert report.baseline_accuracy - report.final_accuracy <= 0.03
    assert report.rounds[-1].federated["accuracy"] > 0.9  # the owners' own held-out data agrees


def test_dp_run_reports_the_accountants_epsilon_and_stays_within_budget(simulated_platform_dir: Path) -> None:
    report = run(simulated_platform_dir, rounds=4, dp_epsilon=8.0, baseline_epochs=0)

    assert report.noise_multiplier is not None
    expected = [epsilon_after(DpParams(clip_norm=1.0, noise_multiplier=report.noise_multiplier, delta=1e-5), r)
                for r in range(1, 5)]  # fmt: skip
    assert [r.epsilon for r in report.rounds] == expected
    assert expected[-1] <= 8.0
    assert all(np.isfinite(r.test_accuracy) for r in report.rounds)


@pytest.fixture(scope="module")
def attack_runs(simulated_platform_dir: Path) -> dict[tuple[str, str], float]:
    warnings.simplefilter("ignore")
    runs: dict[tuple[str, str], float] = {}
    cases = [("fedavg", "none"), ("krum", "none")] + [
        (s, a) for s in ("fedavg", "median", "trimmed_mean", "krum", "multikrum") for a in ("scale", "signflip")
    ]
    for strategy, attack in cases:
        params: dict[str, object] = {"select": 4} if strategy == "multikrum" else {}
        report = run(simulated_platform_dir, rounds=ROBUST_ROUNDS, strategy=strategy, strategy_params=params,
                     attack=attack, baseline_epochs=0)  # fmt: skip
        runs[strategy, attack] = report.final_accuracy
    return runs


@pytest.mark.parametrize("attack", ["scale", "signflip"])
def test_plain_fedavg_degrades_when_one_owner_attacks(attack_runs: dict[tuple[str, str], float], attack: str) -> None:
    assert attack_runs["fedavg", attack] < attack_runs["fedavg", "none"] - 0.10


@pytest.mark.parametrize("attack", ["scale", "signflip"])
@pytest.mark.parametrize("strategy", ["trimmed_mean", "multikrum"])
def test_trimmed_mean_and_multikrum_stay_within_5_points_of_the_clean_fedavg_run(
    attack_runs: dict[tuple[str, str], float], strategy: str, attack: str
) -> None:
    assert attack_runs[strategy, attack] >= attack_runs["fedavg", "none"] - 0.05


def test_median_stays_within_5_points_of_the_clean_run_under_scaling(attack_runs: dict[tuple[str, str], float]) -> None:
    assert attack_runs["median", "scale"] >= attack_runs["fedavg", "none"] - 0.05


@pytest.mark.parametrize("attack", ["scale", "signflip"])
def test_krum_is_unmoved_by_the_attacker(attack_runs: dict[tuple[str, str], float], attack: str) -> None:
    # Krum keeps one owner's model: the attacker cannot move it, but label skew costs it accuracy even clean
    assert attack_runs["krum", attack] >= attack_runs["krum", "none"] - 0.05


def test_median_beats_fedavg_under_sign_flipping(attack_runs: dict[tuple[str, str], float]) -> None:
    assert attack_runs["median", "signflip"] > attack_runs["fedavg", "signflip"] + 0.3


def test_cli_writes_metrics_json_and_a_png(tmp_path: Path) -> None:
    from enclavefl.cli.digits import app

    result = CliRunner().invoke(app, ["--rounds", "2", "--out", str(tmp_path), "--dp-epsilon", "8"])

    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "digits.json").read_text())
    assert len(data["rounds"]) == 2 and data["rounds"][-1]["epsilon"] <= 8.0
    assert (tmp_path / "digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "centralized baseline" in result.output

"""`enclavefl demo --masked`: the seed federation in masked mode reaches the unmasked run's model and loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enclavefl.demos.seed import SEED_MASKING, SEED_ROUNDS, run_seed


def test_masked_seed_run_matches_the_unmasked_run_within_the_fixed_point_bound(tmp_path: Path) -> None:
    plain, plain_eval = run_seed(platform_dir=tmp_path)
    masked, masked_eval = run_seed(platform_dir=tmp_path, masked=True)
    assert [s.contributions for s in masked.rounds] == [2] * SEED_ROUNDS
    # per round the mean moves by at most 1/(2 scale) per coordinate; float32 training adds ~1e-7 per step
    per_round = 1 / (2 * SEED_MASKING.scale) + 1e-6
    for name in plain.final_model:
        plain_value = np.asarray(plain.final_model[name], np.float64)
        diff = np.abs(plain_value - np.asarray(masked.final_model[name], np.float64))
        assert float(diff.max()) <= SEED_ROUNDS * per_round
    assert abs(plain_eval.loss - masked_eval.loss) <= 1e-4
    assert masked_eval.loss < 0.05  # it learned, like the unmasked run


def test_masked_digits_run_reaches_the_unmasked_runs_accuracy(simulated_platform_dir: Path) -> None:
    from enclavefl.demos.digits import DigitsConfig, run_digits

    common = {"rounds": 8, "owners": 5, "baseline_epochs": 0, "strategy_params": {"weighted": False}}
    plain = run_digits(DigitsConfig(**common), platform_dir=simulated_platform_dir)  # type: ignore[arg-type]
    masked = run_digits(DigitsConfig(masked=True, **common), platform_dir=simulated_platform_dir)  # type: ignore[arg-type]
    assert len(masked.rounds) == 8 and masked.stopped_early is None
    assert abs(plain.final_accuracy - masked.final_accuracy) <= 0.01
    assert masked.final_accuracy > 0.8

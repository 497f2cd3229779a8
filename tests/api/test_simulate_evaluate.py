"""`simulate(evaluate=...)`: the model owner's central evaluation of every released model (Flower's evaluate_fn)."""

from __future__ import annotations

import io
import json

import pytest
from user_script import TASK, owners_data

import enclavefl
from enclavefl import TrainConfig
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import TaskError
from enclavefl.owner.metrics_loggers import JsonLinesLogger


def test_evaluate_sees_the_initial_model_and_each_released_model_and_its_figures_reach_the_loggers() -> None:
    seen: list[tuple[int, str]] = []

    def evaluate(round_index: int, weights: ModelWeights) -> dict[str, float]:
        seen.append((round_index, weights.sha256().hex()))
        return {"norm": float(sum(abs(weights[n]).sum() for n in weights))}

    lines = io.StringIO()
    history = enclavefl.simulate(
        TASK,
        owners_data(),
        rounds=3,
        train=TrainConfig(local_steps=2, lr=0.1),
        evaluate=evaluate,
        loggers=[JsonLinesLogger(lines)],
    )

    assert [r for r, _ in seen] == [0, 1, 2, 3]
    released = [summary.global_model_sha256 for summary in history.rounds]
    assert [digest for _, digest in seen[1:]] == released  # each released model, not the one before or after
    assert seen[-1][1] == history.final_model.sha256().hex()
    assert sorted(history.central) == [0, 1, 2, 3]
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [r["central"]["norm"] for r in records] == pytest.approx([history.central[r]["norm"] for r in (1, 2, 3)])


def test_an_evaluate_that_raises_is_one_task_error_naming_the_round() -> None:
    def evaluate(round_index: int, weights: ModelWeights) -> dict[str, float]:
        if round_index == 2:
            raise ValueError("shapes do not match")
        return {"ok": 1.0}

    with pytest.raises(TaskError, match="central evaluation of round 2 raised ValueError: shapes do not match"):
        enclavefl.simulate(TASK, owners_data(), rounds=3, train=TrainConfig(local_steps=1, lr=0.1), evaluate=evaluate)

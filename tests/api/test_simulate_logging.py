"""`simulate(loggers=...)`: a notebook's federation logs the same round records as `job watch` does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from user_script import TASK, owners_data

import enclavefl
from enclavefl import TrainConfig
from enclavefl.owner.metrics_loggers import JsonLinesLogger, TensorBoardLogger


def test_simulate_logs_every_round_to_each_logger(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="needs the tensorboard extra"
    )
    lines = io.StringIO()
    board = TensorBoardLogger(tmp_path / "tb")

    history = enclavefl.simulate(
        TASK, owners_data(), rounds=3, train=TrainConfig(local_steps=2, lr=0.1), loggers=[JsonLinesLogger(lines), board]
    )
    board.close()

    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [r["round"] for r in records] == [1, 2, 3]
    assert [r["train"]["train_loss"] for r in records] == pytest.approx(history.metric("train_loss"))
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/train_loss")]
    assert logged == [(r, pytest.approx(v, rel=1e-6)) for r, v in enumerate(history.metric("train_loss"), start=1)]

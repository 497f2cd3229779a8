"""A data owner's local progress: a bar over the round's steps on a terminal, one summary line per round."""

from __future__ import annotations

import dataclasses
import io

import torch
from rich.console import Console

from enclavefl.cli.owner_progress import OwnerProgress
from enclavefl.core.job import TrainConfig
from enclavefl.demos.seed import SEED_TASK
from enclavefl.owner.data_owner import describe_losses
from enclavefl.task import TensorData, TrainResult

DATA = TensorData(x=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), y=torch.tensor([[3.0], [2.0], [5.0]]))


def test_a_torch_task_reports_each_step_to_the_bar_on_a_terminal() -> None:
    screen = io.StringIO()
    shown = OwnerProgress(Console(file=screen, force_terminal=True, width=100))
    heard: list[tuple[int, int | None]] = []
    task = shown.on_task(SEED_TASK)
    step = task.on_step  # type: ignore[attr-defined]
    assert step is not None
    task = dataclasses.replace(task, on_step=lambda s, t, loss: (heard.append((s, t)), step(s, t, loss)))

    with shown:
        result = task.train(task.create_model(), DATA, TrainConfig(local_steps=3, lr=0.01), global_model=None)
        shown.line("[alice] round 1 local losses: " + describe_losses(result))

    assert heard == [(1, 3), (2, 3), (3, 3)]
    drawn = screen.getvalue()
    assert "local training" in drawn and "3/3" in drawn  # the bar was drawn
    assert "[alice] round 1 local losses: 3 steps, " in drawn


def test_piped_output_gets_no_bar_and_the_task_is_left_alone() -> None:
    shown = OwnerProgress(Console(file=io.StringIO(), force_terminal=False))
    assert shown.on_task(SEED_TASK) is SEED_TASK


def test_one_line_per_round_not_one_number_per_step() -> None:
    line = describe_losses(TrainResult(num_examples=120, losses=tuple(0.5 - 0.01 * i for i in range(50))))
    assert line == "50 steps, 0.5000 -> 0.0100 (mean 0.2550) on 120 examples"
    assert describe_losses(TrainResult(num_examples=7, losses=(0.25,))) == "1 step, 0.2500 on 7 examples"

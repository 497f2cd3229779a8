"""A data owner's local progress in the terminal: a bar over the round's training steps, one line per round.

    with OwnerProgress() as shown:
        task = shown.on_task(task)               # a TorchTask reports each step to the bar
        client = DataOwnerClient(..., on_line=shown.line)

On a terminal the bar stays below the lines and disappears when done; piped or redirected, only the lines are
written (one per round: steps, first and last loss, mean), so a log file never fills with bar redraws.
"""

from __future__ import annotations

import dataclasses
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from enclavefl.task import Task


class OwnerProgress:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(soft_wrap=True, highlight=False)
        self._progress = Progress(
            TextColumn("local training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._bar: TaskID | None = None

    def on_task(self, task: Task) -> Task:
        """`task` reporting each optimizer step here (a TorchTask; any other task is returned unchanged)."""
        from enclavefl.task.api import TorchTask

        if not isinstance(task, TorchTask) or not self.console.is_terminal:
            return task
        return dataclasses.replace(task, on_step=self.step)

    def step(self, step: int, total: int | None, loss: float) -> None:
        if self._bar is None:
            self._bar = self._progress.add_task("train", total=total, loss="")
        if step == 1:  # a new round: the bar starts again
            self._progress.reset(self._bar, total=total, loss="")
        self._progress.update(self._bar, completed=step, loss=f"{loss:.4f}")

    def line(self, text: str) -> None:
        """One line above the bar (the owner's round summaries, retries, notices)."""
        self.console.print(text, markup=False, highlight=False)

    def __enter__(self) -> OwnerProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._progress.stop()

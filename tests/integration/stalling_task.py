"""The tiny task, except that the owner named in ENCLAVEFL_TEST_STALL_OWNER stalls in its Nth training call.

Masked mode trains after the owner has shared its seeds, so a stalled owner is one that dropped out after
masking began: its neighbours hold its shares, its pairwise masks are in their inputs, its own input never
comes. It writes the file ENCLAVEFL_TEST_STALL_MARKER first, so the test knows when to kill it.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import time
from pathlib import Path

import torch

from enclavefl.core.job import TrainConfig
from enclavefl.task import TensorData, TrainResult

# loaded by file path (like a user's task), so the sibling module is loaded by path too
_spec = importlib.util.spec_from_file_location("enclavefl_test_tiny_task", Path(__file__).with_name("tiny_task.py"))
assert _spec is not None and _spec.loader is not None
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)


class StallingTask(_tiny.TinyTask):  # type: ignore[misc, name-defined]
    calls = 0

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        StallingTask.calls += 1
        victim = os.environ.get("ENCLAVEFL_TEST_STALL_OWNER", "")
        stall_at = int(os.environ.get("ENCLAVEFL_TEST_STALL_CALL", "2"))
        if victim and f"--name={victim}" in _argv() and StallingTask.calls == stall_at:
            Path(os.environ["ENCLAVEFL_TEST_STALL_MARKER"]).write_text("stalled in training\n")
            time.sleep(600)  # killed by the test long before
        return super().train(model, data, config, global_model=global_model)


def _argv() -> set[str]:
    args = sys.argv
    return {f"{a}={b}" for a, b in itertools.pairwise(args)}


TASK = StallingTask()

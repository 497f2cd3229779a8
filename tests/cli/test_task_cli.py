"""`enclavefl task init-model`: the initial model from the task the owners run, ready for `job init --model`."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile import read_initial_model
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.demos.seed import SEED_TASK

runner = CliRunner()
TASK = "enclavefl.demos.seed:SEED_TASK"


def test_init_model_writes_the_tasks_model_under_the_seed(tmp_path: Path) -> None:
    out = tmp_path / "init.safetensors"
    result = runner.invoke(app, ["task", "init-model", TASK, "--out", str(out), "--seed", "3"])

    assert result.exit_code == 0, result.output
    torch.manual_seed(3)
    expected = weights_from_module(SEED_TASK.create_model())
    written = read_initial_model(out)
    assert written.sha256() == expected.sha256()
    assert result.output.strip() == f"wrote {out}: 2 tensors, 3 parameters, weights digest {expected.sha256().hex()}"


def test_init_model_keeps_an_existing_file_and_names_a_missing_task(tmp_path: Path) -> None:
    out = tmp_path / "init.safetensors"
    out.write_bytes(b"mine")

    kept = runner.invoke(app, ["task", "init-model", TASK, "--out", str(out)])
    missing = runner.invoke(
        app, ["task", "init-model", str(tmp_path / "nope.py") + ":TASK", "--out", str(tmp_path / "x")]
    )

    assert kept.exit_code == ExitCode.CONFIG
    assert kept.output.strip() == f"error: ConfigError: --out {out} exists; nothing was written (--force replaces it)"
    assert out.read_bytes() == b"mine"
    assert missing.exit_code == ExitCode.CONFIG
    assert len(missing.output.strip().splitlines()) == 1 and "TaskError" in missing.output

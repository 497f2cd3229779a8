"""`enclavefl job initial-model` writes a task's travelling part and prints its base digest; `job init --base-model`
binds that base into the job."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile import load_job, read_initial_model
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()

TASK_FILE = """
import torch
from enclavefl import TorchTask, TrainableSubset


def model():
    torch.manual_seed(7)  # the base: the same on every machine that runs this file
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    return TrainableSubset(net, trainable=["2.weight", "2.bias"], base_name="frozen-mlp")


TASK = TorchTask(model_factory=model, loss_fn=torch.nn.functional.mse_loss)
PLAIN = TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss)
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "task.py").write_text(TASK_FILE)
    (tmp_path / "alice.pem").write_bytes(OwnerCredentials.generate("alice").certificate_pem)
    (tmp_path / "model-owner.pem").write_bytes(OwnerCredentials.generate("model-owner").certificate_pem)
    return tmp_path


def expected_base_digest(folder: Path) -> str:
    spec = importlib.util.spec_from_file_location("adapter_cli_task", folder / "task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.TASK.create_model().frozen_base.sha256)


def test_initial_model_writes_the_travelling_part_and_prints_the_base_digest(folder: Path) -> None:
    out = folder / "init.safetensors"

    result = runner.invoke(app, ["job", "initial-model", "--task", f"{folder / 'task.py'}:TASK", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert sorted(read_initial_model(out)) == ["2.bias", "2.weight"]
    digest = expected_base_digest(folder)
    assert "frozen base model 'frozen-mlp'" in result.output
    assert f"--base-model frozen-mlp={digest}" in result.output


def test_initial_model_of_a_whole_model_needs_no_base(folder: Path) -> None:
    out = folder / "init.safetensors"

    result = runner.invoke(app, ["job", "initial-model", "--task", f"{folder / 'task.py'}:PLAIN", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "no frozen base model" in result.output
    assert sorted(read_initial_model(out)) == ["bias", "weight"]


def test_init_binds_the_base_model_printed_by_initial_model(folder: Path) -> None:
    init = folder / "init.safetensors"
    printed = runner.invoke(app, ["job", "initial-model", "--task", f"{folder / 'task.py'}:TASK", "--out", str(init)])
    match = re.search(r"--base-model (\S+)", printed.output)
    assert match is not None, printed.output
    common = [
        "job",
        "init",
        "--name",
        "adapters",
        "--model",
        str(init),
        "--owner",
        f"alice={folder / 'alice.pem'}",
        "--model-owner-cert",
        str(folder / "model-owner.pem"),
        "--min-contributions",
        "1",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
    ]

    bound = runner.invoke(app, [*common, "--base-model", match.group(1), "--out", str(folder / "bound.toml")])
    plain = runner.invoke(app, [*common, "--out", str(folder / "plain.toml")])

    assert bound.exit_code == 0 and plain.exit_code == 0, bound.output + plain.output
    job = load_job(folder / "bound.toml")
    assert job.base_model is not None
    assert (job.base_model.name, job.base_model.sha256) == ("frozen-mlp", expected_base_digest(folder))
    assert job.train.optimizer == "adam"
    assert job.digest() != load_job(folder / "plain.toml").digest()
    assert job.base_model.sha256 in bound.output


@pytest.mark.parametrize(
    ("value", "message"),
    [("no-digest", "expected NAME=SHA256"), ("name=1234", "base_model.sha256: must be 64 lowercase hex digits")],
)
def test_init_refuses_a_malformed_base_model(folder: Path, value: str, message: str) -> None:
    init = folder / "init.safetensors"
    runner.invoke(app, ["job", "initial-model", "--task", f"{folder / 'task.py'}:TASK", "--out", str(init)])

    result = runner.invoke(
        app,
        [
            "job",
            "init",
            "--name",
            "adapters",
            "--model",
            str(init),
            "--owner",
            f"alice={folder / 'alice.pem'}",
            "--model-owner-cert",
            str(folder / "model-owner.pem"),
            "--min-contributions",
            "1",
            "--base-model",
            value,
            "--out",
            str(folder / "job.toml"),
        ],
    )

    assert result.exit_code == ExitCode.CONFIG
    assert message in result.output
    assert not (folder / "job.toml").exists()

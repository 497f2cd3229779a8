"""The mistakes a new user makes (issue 24, item 3): each ends in one line and its documented exit status, with
no traceback, and loses nothing (no file overwritten, nothing sent, no directory created)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from node_harness import Workspace, model, workspace
from typer.testing import CliRunner

import enclavefl
from enclavefl.cli.main import app
from enclavefl.core.codec import encode_weights
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile import load_job
from enclavefl.errors import ConfigError, DataMismatch
from enclavefl.owner.preflight import check_task_fits
from enclavefl.task import TensorData, TorchTask

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


def one_line(result: object) -> str:
    """The command's output, asserted to be a single line with no traceback."""
    output = str(getattr(result, "output", "")).strip()
    lines = [line for line in output.splitlines() if not line.startswith("[model owner] WARNING")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    exception = getattr(result, "exception", None)
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    return lines[0]


def mo(ws: Workspace, address: str, *, key: Path | None = None) -> list[str]:
    key_file, cert = ws.keys["model-owner"]
    node = ["--node", address, "--job", str(ws.job_file), "--policy", str(ws.policy_file)]
    return [*node, "--key", str(key or key_file), "--cert", str(cert)]


def init_args(ws: Workspace, out: Path) -> list[str]:
    owners = [arg for name in ("alice", "bob") for arg in ("--owner", f"{name}={ws.keys[name][1]}")]
    return ["job", "init", "--name", "t", "--model", str(ws.model_file), *owners, "--out", str(out)]


def test_job_init_without_the_model_owner_certificate_writes_nothing_and_exits_2(workspace: Workspace) -> None:
    out = workspace.directory / "new-job.toml"
    result = runner.invoke(app, init_args(workspace, out))
    assert result.exit_code == ExitCode.CONFIG
    assert one_line(result).startswith("error: ConfigError: --model-owner-cert is missing")
    assert not out.exists()


def test_job_init_does_not_overwrite_a_job_file_without_force(workspace: Workspace) -> None:
    before = workspace.job_file.read_text()
    cert = ["--model-owner-cert", str(workspace.keys["model-owner"][1])]

    refused = runner.invoke(app, [*init_args(workspace, workspace.job_file), *cert, "--rounds", "7"])
    kept = workspace.job_file.read_text()
    forced = runner.invoke(app, [*init_args(workspace, workspace.job_file), *cert, "--rounds", "7", "--force"])

    assert refused.exit_code == ExitCode.CONFIG
    assert (
        one_line(refused)
        == f"error: ConfigError: --out {workspace.job_file} exists; nothing was written (--force replaces it)"
    )
    assert kept == before
    assert forced.exit_code == 0, forced.output
    assert load_job(workspace.job_file).rounds == 7


def test_job_init_takes_every_train_config_option(workspace: Workspace) -> None:
    out = workspace.directory / "epochs.toml"
    cert = ["--model-owner-cert", str(workspace.keys["model-owner"][1])]
    train = ["--local-epochs", "2", "--optimizer", "adam", "--momentum", "0.5", "--proximal-mu", "0.01"]
    result = runner.invoke(app, [*init_args(workspace, out), *cert, *train, "--seed", "7", "--batch-size", "4"])

    assert result.exit_code == 0, result.output
    t = load_job(out).train
    assert (t.local_steps, t.local_epochs, t.optimizer, t.momentum, t.proximal_mu, t.seed, t.batch_size) == (
        None,
        2,
        "adam",
        0.5,
        0.01,
        7,
        4,
    )
    bad = runner.invoke(app, [*init_args(workspace, workspace.directory / "x.toml"), *cert, "--optimizer", "lamb"])
    assert bad.exit_code == ExitCode.CONFIG
    assert "optimizer" in one_line(bad)


def test_submit_checks_the_model_offline_and_sends_nothing(workspace: Workspace) -> None:
    other = workspace.directory / "other.safetensors"
    other.write_bytes(encode_weights(model(9.0)))
    node = workspace.node()
    try:
        missing = runner.invoke(app, ["job", "submit", *mo(workspace, node.address), "--model", "nope.safetensors"])
        wrong = runner.invoke(app, ["job", "submit", *mo(workspace, node.address), "--model", str(other)])
        state = node.node_status().job_state.value
    finally:
        node.stop(0)

    assert missing.exit_code == ExitCode.CONFIG
    assert one_line(missing) == (
        "error: JobSpecError: --model nope.safetensors: initial_model: cannot read nope.safetensors: "
        "No such file or directory"
    )
    assert wrong.exit_code == ExitCode.CONFIG
    assert one_line(wrong).startswith(f"error: ConfigError: --model {other} is not the job's initial model")
    assert state == "awaiting-model"


def test_download_before_the_job_finished_says_where_it_stands(workspace: Workspace) -> None:
    node = workspace.node()
    out = workspace.directory / "final.safetensors"
    try:
        result = runner.invoke(app, ["job", "download", *mo(workspace, node.address), "--out", str(out)])
    finally:
        node.stop(0)

    assert result.exit_code == ExitCode.REFUSED
    assert one_line(result).startswith(
        "refused: the job has not finished, so there is no final model yet (job awaiting-model, 0 of 2 rounds"
    )
    assert not out.exists()


def test_a_missing_key_file_names_the_option(workspace: Workspace) -> None:
    missing = workspace.directory / "nokey.key"
    result = runner.invoke(app, ["job", "status", *mo(workspace, "127.0.0.1:1", key=missing)])

    assert result.exit_code == ExitCode.CONFIG
    assert one_line(result) == f"error: ConfigError: --key {missing}: cannot read it: No such file or directory"
    with pytest.raises(ConfigError, match=r"--key .*nokey\.key: cannot read it"):
        enclavefl.DataOwnerClient(
            node="127.0.0.1:1",
            job=workspace.job_file,
            policy=workspace.policy_file,
            key=missing,
            cert=workspace.keys["alice"][1],
        )


@pytest.mark.parametrize("content", [None, '{"version": 2, "receipts": ['])
def test_receipts_verify_on_a_missing_or_truncated_file_exits_2(workspace: Workspace, content: str | None) -> None:
    file = workspace.directory / "final.receipts.json"
    if content is not None:
        file.write_text(content)
    result = runner.invoke(app, ["receipts", "verify", str(file), "--policy", str(workspace.policy_file)])

    assert result.exit_code == ExitCode.CONFIG
    assert one_line(result).startswith(f"error: ConfigError: {file}: ")


def test_ledger_show_on_a_missing_directory_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "no-state"
    result = runner.invoke(app, ["data-owner", "ledger", "show", "--state", str(state)])

    assert result.exit_code == ExitCode.CONFIG
    assert (
        one_line(result) == f"error: ConfigError: --state {state}: no such directory (the --state of `data-owner run`)"
    )
    assert not state.exists()


@pytest.mark.slow
def test_python_dash_m_enclavefl_is_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "enclavefl", "job", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m enclavefl job" in done.stdout


@pytest.mark.parametrize(
    ("x", "y", "said"),
    [
        ([[1.0, float("nan")], [0.0, 1.0]], torch.ones(2, 1), "x holds 1 non-finite value(s) (1 NaN, 0 inf)"),
        (
            [[1.0, 0.0], [0.0, 1.0]],
            torch.tensor([[1.0], [float("inf")]]),
            "y holds 1 non-finite value(s) (0 NaN, 1 inf)",
        ),
        ([], torch.zeros(0, 1), "holds 0 examples"),
        ([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], torch.tensor([3.0, 2.0, 5.0]), "is 1-D and the loss of two examples"),
    ],
)
def test_the_preflight_catches_bad_values_empty_data_and_a_broadcast_target(
    x: list[list[float]], y: torch.Tensor, said: str
) -> None:
    from enclavefl.demos.seed import SEED_TASK as seed

    with pytest.raises(DataMismatch, match=said.replace("(", r"\(").replace(")", r"\)")):
        check_task_fits(seed, job=_job(), data=TensorData(x=torch.tensor(x).reshape(-1, 2), y=y))


def test_class_labels_as_a_1d_target_pass_the_preflight() -> None:
    task = TorchTask(model_factory=lambda: torch.nn.Linear(2, 3), loss_fn=torch.nn.functional.cross_entropy)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    check_task_fits(task, job=_job(), data=TensorData(x=x, y=torch.tensor([0, 2, 1])))


def test_a_loss_that_raises_is_named_with_its_line(tmp_path: Path) -> None:
    def broken_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise ValueError("labels out of range")

    task = TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=broken_loss)
    line = broken_loss.__code__.co_firstlineno + 1

    with pytest.raises(
        DataMismatch, match=rf"raised ValueError: labels out of range \(at test_mistakes.py line {line}\)"
    ):
        check_task_fits(task, job=_job(), data=TensorData(x=torch.ones(2, 2), y=torch.ones(2, 1)))


def _job() -> object:
    """A job whose schema is not checked: these tests are about the data."""

    class NoSchema:  # a job that names no model schema and no frozen base model: only the data is checked
        model_schema = None
        base_model = None

    return NoSchema()


def test_the_process_example_without_the_venv_says_what_to_do() -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "seed-processes" / "run.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60
    )

    assert done.returncode == ExitCode.CONFIG
    assert done.stderr.strip() == (
        "run.sh: enclavefl is not on PATH; from the repository root: make setup && . .venv/bin/activate"
    )

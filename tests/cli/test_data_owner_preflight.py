"""`data-owner run` checks task, model and data before it contacts the node: the catalogue of input mistakes.

Each mistake must end in one line naming what is wrong (tensor names and shapes where they matter), the
documented configuration status, no Python traceback, and no connection to the node.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from node_harness import Workspace, workspace
from safetensors.numpy import save_file
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
SRC = Path(__file__).resolve().parents[2] / "src"

GOOD_TASK = """
import torch
from enclavefl.task import TorchTask

def model() -> torch.nn.Module:
    return torch.nn.Linear(2, 1)

TASK = TorchTask(model_factory=model, loss_fn=lambda p, t: ((p - t) ** 2).sum())
"""


class CountingListener:
    """A TCP port standing in for the node that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    node = CountingListener()
    yield node
    node.close()


def _write_data(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    save_file(tensors, str(path))
    return path


def good_files(ws: Workspace) -> dict[str, Path]:
    (ws.directory / "task.py").write_text(GOOD_TASK)
    data = {"x": np.array([[1, 0], [1, 1]], np.float32), "y": np.ones((2, 1), np.float32)}
    return {"task": ws.directory / "task.py", "data": _write_data(ws.directory / "alice.safetensors", data)}


# Each mistake edits the good files and names a fragment the one-line error must contain.
Mistake = Callable[[Workspace, dict[str, Path]], str]


def bad_task_path(ws: Workspace, files: dict[str, Path]) -> str:
    files["task"] = ws.directory / "no-such-task.py"
    return "no-such-task.py does not exist"


def syntax_error_in_task(ws: Workspace, files: dict[str, Path]) -> str:
    files["task"].write_text(GOOD_TASK.replace("def model() -> torch.nn.Module:", "def model() -> torch.nn.Module"))
    return "line 5: SyntaxError"


def task_raises_on_import(ws: Workspace, files: dict[str, Path]) -> str:
    files["task"].write_text(GOOD_TASK + "\nundefined_name + 1\n")
    return "NameError: name 'undefined_name' is not defined"


def schema_mismatch(ws: Workspace, files: dict[str, Path]) -> str:
    files["task"].write_text(GOOD_TASK.replace("Linear(2, 1)", "Linear(3, 1)"))
    return "ModelSchemaMismatch: the task's model is not the job's model: weight is (1, 3) float32 in the task, (1, 2)"


def extra_tensor_in_model(ws: Workspace, files: dict[str, Path]) -> str:
    files["task"].write_text(
        GOOD_TASK.replace("return torch.nn.Linear(2, 1)", "return torch.nn.Sequential(torch.nn.Linear(2, 1))")
    )
    return "0.weight (1, 2) float32 is not in the job"


def x_width_mismatch(ws: Workspace, files: dict[str, Path]) -> str:
    _write_data(files["data"], {"x": np.ones((2, 3), np.float32), "y": np.ones((2, 1), np.float32)})
    return "DataMismatch: " + str(files["data"]) + " does not fit the task's model: one example, x (1, 3) float32"


def missing_data_file(ws: Workspace, files: dict[str, Path]) -> str:
    files["data"] = ws.directory / "missing.safetensors"
    return "missing.safetensors: not a readable safetensors file"


def wrong_tensors_in_data(ws: Workspace, files: dict[str, Path]) -> str:
    _write_data(files["data"], {"inputs": np.ones((2, 2), np.float32), "y": np.ones((2, 1), np.float32)})
    return "expected exactly the tensors 'x' and 'y', found ['inputs', 'y']"


def rows_differ(ws: Workspace, files: dict[str, Path]) -> str:
    _write_data(files["data"], {"x": np.ones((3, 2), np.float32), "y": np.ones((2, 1), np.float32)})
    return "x has 3 examples but y has 2"


def not_a_task(ws: Workspace, files: dict[str, Path]) -> str:
    files["task"].write_text(GOOD_TASK + "\nNOT_A_TASK = 3\n")
    files["attr"] = Path("NOT_A_TASK")
    return "NOT_A_TASK is not a Task"


def data_not_safetensors(ws: Workspace, files: dict[str, Path]) -> str:
    files["data"].write_bytes(b"x,y\n1,2\n")
    return "not a readable safetensors file"


CATALOGUE: list[Mistake] = [
    bad_task_path,
    syntax_error_in_task,
    task_raises_on_import,
    schema_mismatch,
    extra_tensor_in_model,
    x_width_mismatch,
    missing_data_file,
    wrong_tensors_in_data,
    rows_differ,
    not_a_task,
    data_not_safetensors,
]


def run_args(ws: Workspace, address: str, files: dict[str, Path]) -> list[str]:
    key, cert = ws.keys["alice"]
    task = f"{files['task']}:{files.get('attr', Path('TASK'))}"
    return [
        "--node",
        address,
        "--job",
        str(ws.job_file),
        "--policy",
        str(ws.policy_file),
        "--task",
        task,
        "--data",
        str(files["data"]),
        "--key",
        str(key),
        "--cert",
        str(cert),
        "--connect-timeout",
        "1",
    ]


@pytest.mark.parametrize("mistake", CATALOGUE, ids=lambda m: m.__name__)
def test_each_input_mistake_is_one_line_and_a_configuration_error_before_the_node_is_contacted(
    mistake: Mistake, workspace: Workspace, listener: CountingListener
) -> None:
    # prepare
    files = good_files(workspace)
    expected = mistake(workspace, files)

    # act
    result = runner.invoke(app, ["data-owner", "run", *run_args(workspace, listener.address, files)])

    # assert
    said = " ".join(result.output.split())
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert isinstance(result.exception, SystemExit)  # nothing escaped as an exception
    assert "Traceback" not in result.output
    assert expected in said
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert listener.connections == 0


def test_the_good_files_pass_the_pre_flight_and_only_then_is_the_node_contacted(
    workspace: Workspace, listener: CountingListener
) -> None:
    files = good_files(workspace)

    result = runner.invoke(app, ["data-owner", "run", *run_args(workspace, listener.address, files)])

    # the listener is no node: the TLS handshake fails and the owner gives up after --connect-timeout
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert listener.connections >= 1


@pytest.mark.parametrize("mistake", [syntax_error_in_task, x_width_mismatch], ids=lambda m: m.__name__)
def test_the_entry_point_without_the_cli_reports_the_same_way(
    mistake: Mistake, workspace: Workspace, listener: CountingListener
) -> None:
    files = good_files(workspace)
    expected = mistake(workspace, files)

    done = subprocess.run(
        [sys.executable, "-m", "enclavefl.owner.data_owner_main", *run_args(workspace, listener.address, files)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(SRC), "PATH": "", "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]},
    )

    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert "Traceback" not in done.stderr
    assert expected in " ".join(done.stderr.split())
    assert listener.connections == 0

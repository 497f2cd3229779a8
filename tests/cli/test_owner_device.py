"""`data-owner run --device`: the owner's own choice of where training runs (cpu, cuda, auto)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from node_harness import Workspace, workspace
from safetensors.numpy import save_file
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import TrainConfig
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.demos.seed import SEED_TASK
from enclavefl.errors import ConfigError
from enclavefl.owner.preflight import on_device
from enclavefl.task import TensorData
from enclavefl.task.api import resolve_device

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
DATA = TensorData(x=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), y=torch.tensor([[3.0], [2.0], [5.0]]))
NO_CUDA = not torch.cuda.is_available()


def trained(device: str | None) -> dict[str, np.ndarray]:
    task = dataclasses.replace(SEED_TASK, device=device)
    torch.manual_seed(0)
    model = task.create_model()
    task.train(model, DATA, TrainConfig(local_steps=3, lr=0.05), global_model=None)
    weights = weights_from_module(model)  # readable: the model is back on the CPU
    return {name: np.array(weights[name]) for name in weights}


def test_training_on_the_chosen_device_gives_the_same_model_and_returns_it_to_the_cpu() -> None:
    chosen = resolve_device("auto")
    here, there = trained(None), trained(chosen)
    assert here.keys() == there.keys()
    for name in here:
        np.testing.assert_allclose(here[name], there[name], rtol=1e-5, atol=1e-6)


def test_auto_is_the_gpu_when_torch_sees_one_else_the_cpu() -> None:
    assert resolve_device("auto") == ("cpu" if NO_CUDA else "cuda")
    assert resolve_device("CPU") == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA device is present: asking for one is not a mistake here")
def test_data_owner_run_with_an_unusable_device_is_one_line_and_status_2(workspace: Workspace) -> None:
    data = workspace.directory / "alice.safetensors"
    save_file({"x": DATA.x.numpy(), "y": DATA.y.numpy()}, str(data))
    key, cert = workspace.keys["alice"]
    args = ["--node", "127.0.0.1:1", "--job", str(workspace.job_file), "--policy", str(workspace.policy_file)]
    args += ["--task", "enclavefl.demos.seed:SEED_TASK", "--data", str(data), "--key", str(key), "--cert", str(cert)]

    result = runner.invoke(app, ["data-owner", "run", *args, "--device", "cuda"])

    assert result.exit_code == ExitCode.CONFIG
    assert result.output.strip() == (
        "error: ConfigError: --device cuda: torch sees no CUDA device here (use cpu or auto)"
    )


def test_a_device_for_a_task_that_is_not_a_torch_task_is_refused_by_name() -> None:
    class Other:
        pass

    with pytest.raises(ConfigError, match="only a TorchTask trains where --device says; this task is a Other"):
        on_device(Other(), "cpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="choose cpu, cuda, cuda:N or auto"):
        resolve_device("tpu")

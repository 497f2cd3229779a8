"""The command users type is the one the tests run: the installed `enclavefl` script and `python -m enclavefl` both
go through `main()` (Ctrl-C is exit 130 in one line, not click's "Aborted!" and exit 1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from node_harness import Workspace, workspace
from safetensors.numpy import save_file

from enclavefl.core.exit_codes import ExitCode

pytestmark = pytest.mark.filterwarnings("ignore")
__all__ = ["workspace"]
SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "COLUMNS": "200"}
SCRIPT = Path(sys.executable).parent / "enclavefl"  # the console script `pip install` wrote into this venv


@pytest.fixture
def installed_script() -> Path:
    if not SCRIPT.is_file():
        pytest.skip(f"no installed `enclavefl` script beside {sys.executable} (run `make setup`)")
    return SCRIPT


def test_the_installed_script_is_the_entry_point_with_the_ctrl_c_handling(installed_script: Path) -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="enclavefl")

    assert script.value == "enclavefl.cli.main:main"
    assert "from enclavefl.cli.main import main" in installed_script.read_text()


def test_ctrl_c_through_the_installed_script_is_exit_130_in_one_line(
    installed_script: Path, workspace: Workspace, tmp_path: Path
) -> None:
    # prepare: a data owner retrying a port nobody listens on, started as a user starts it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "alice.safetensors"
    save_file({"x": np.ones((2, 2), np.float32), "y": np.ones((2, 1), np.float32)}, str(data))
    key, cert = workspace.keys["alice"]
    args = ["data-owner", "run", "--node", f"127.0.0.1:{port}", "--job", str(workspace.job_file)]
    args += ["--policy", str(workspace.policy_file), "--task", "enclavefl.demos.seed:SEED_TASK", "--data", str(data)]
    args += ["--key", str(key), "--cert", str(cert), "--connect-timeout", "60"]
    owner = subprocess.Popen(
        [str(installed_script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )

    # act: Ctrl-C once it says it is retrying (main() has installed its handler long before)
    try:
        assert owner.stdout is not None
        lines = [owner.stdout.readline() for _ in range(3)]  # its state directory, the warm-up, the first retry
        owner.send_signal(signal.SIGINT)
        _, err = owner.communicate(timeout=30)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()

    # assert
    assert "keeping state in" in lines[0] and "node unreachable (attempt 1" in lines[2], lines
    assert owner.returncode == ExitCode.INTERRUPTED, err
    assert err.strip().splitlines()[-1] == "interrupted: exit 130"
    assert "Traceback" not in err and "Aborted" not in err


def test_python_dash_m_enclavefl_is_the_command() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "enclavefl", "--version"], capture_output=True, text=True, env=ENV, timeout=120
    )
    usage = subprocess.run(
        [sys.executable, "-m", "enclavefl", "job", "--help"], capture_output=True, text=True, env=ENV, timeout=120
    )

    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("enclavefl ")
    assert usage.returncode == 0, usage.stderr
    assert "Usage: python -m enclavefl job" in usage.stdout


def test_python_dash_m_enclavefl_runs_main_so_a_file_error_is_one_line(tmp_path: Path) -> None:
    # `python -m enclavefl` with an app that hits an unexpected file error: main()'s handler, not a traceback
    code = (
        "import runpy, sys\n"
        "from enclavefl.cli import main as m\n"
        "def boom(): raise PermissionError(13, 'Permission denied', '/srv/x')\n"
        "m.app = boom\n"
        "sys.argv = ['enclavefl']\n"
        "runpy.run_module('enclavefl', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)

    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert done.stderr.strip() == "error: PermissionError: /srv/x: Permission denied"

"""`node serve` keeps durable state by default: Ctrl-C says how to resume, the same command resumes the job.

Real processes: the node is `python -m enclavefl.cli.main node serve`, stopped with SIGINT as Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from node_harness import Workspace, workspace

from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile import read_initial_model
from enclavefl.host.node_tee import default_state_dir
from enclavefl.owner.model_owner import ModelOwnerSession

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(180)]
__all__ = ["workspace"]
SRC = Path(__file__).resolve().parents[2] / "src"


def _serve(ws: Workspace, platform_dir: Path, port_file: Path, *extra: str) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "enclavefl.cli.main",
        "node",
        "serve",
        "--job",
        str(ws.job_file),
        "--tee",
        "insecure-simulation",
        "--platform-dir",
        str(platform_dir),
        "--port",
        "0",
        "--port-file",
        str(port_file),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    port_file.unlink(missing_ok=True)
    return subprocess.Popen(args, cwd=ws.directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _address(port_file: Path, process: subprocess.Popen[str], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the node never listened"
        time.sleep(0.05)
    return port_file.read_text().strip()


def _submit_initial_model(ws: Workspace, address: str) -> None:
    credentials = ws.credentials("model-owner")
    session = ModelOwnerSession.connect(address, job=ws.job, policy=ws.policy, credentials=credentials)
    try:
        session.submit_initial_model(read_initial_model(ws.model_file))
    finally:
        session.close()


def _ctrl_c(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=60)


def test_ctrl_c_says_how_to_resume_and_the_same_command_resumes_the_job(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    # prepare: a node on the tutorial's command line (no --state), the job started, no data owner yet
    port_file = tmp_path / "node.addr"
    ws = workspace.with_job(round_deadline_seconds=120.0)
    node = _serve(ws, simulated_platform_dir, port_file)
    _submit_initial_model(ws, _address(port_file, node))

    # act: Ctrl-C, then the very same command again
    out, err = _ctrl_c(node)
    again = _serve(ws, simulated_platform_dir, port_file)
    try:
        address = _address(port_file, again)
        session = ModelOwnerSession.connect(
            address, job=ws.job, policy=ws.policy, credentials=ws.credentials("model-owner")
        )
        status = session.status()
        session.close()
    finally:
        again_out, _ = _ctrl_c(again)

    # assert: the state directory was printed, the stop said how to resume, the restart resumed (same job)
    state = default_state_dir(ws.job_file, ws.job)
    assert node.returncode == ExitCode.INTERRUPTED, err
    said = " ".join(out.split())
    assert f"node state: {state}" in said
    assert f"the job can be resumed: start the node again on the same state directory ({state})" in said
    assert "resumed from the sealed checkpoint of round 0" in " ".join(again_out.split())
    assert "waiting for the model owner's initial model" not in again_out
    assert status.job_state.value == "running"


def test_an_ephemeral_node_says_the_job_cannot_be_resumed(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    port_file = tmp_path / "node.addr"
    node = _serve(workspace, simulated_platform_dir, port_file, "--ephemeral")
    _address(port_file, node)

    out, err = _ctrl_c(node)

    assert node.returncode == ExitCode.INTERRUPTED, err
    said = " ".join(out.split())
    assert "node state: none (--ephemeral)" in said
    assert "the job cannot be resumed" in said
    assert not default_state_dir(workspace.job_file, workspace.job).exists()


def test_the_same_command_twice_the_second_exits_at_once_and_leaves_the_first_alone(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    first = _serve(workspace, simulated_platform_dir, tmp_path / "first.addr")
    try:
        address = _address(tmp_path / "first.addr", first)

        second = _serve(workspace, simulated_platform_dir, tmp_path / "second.addr")
        try:
            _, err = second.communicate(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
                second.communicate()

        assert second.returncode == ExitCode.IN_USE, err
        assert f"StateDirInUse: another node (pid {first.pid}) already serves from" in " ".join(err.split())
        _submit_initial_model(workspace, address)  # the first node still serves its job
        assert first.poll() is None
    finally:
        _ctrl_c(first)

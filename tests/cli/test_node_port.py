"""Two nodes on one port: the second exits at once with its own status; the first keeps serving its job."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from node_harness import Workspace, workspace

from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import BindError, PortInUse
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.transport.grpc_server import bind_error

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(120)]
__all__ = ["workspace"]
SRC = Path(__file__).resolve().parents[2] / "src"


def _serve(ws: Workspace, platform_dir: Path, *, port: int, port_file: Path | None = None) -> subprocess.Popen[str]:
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
        str(port),
        "--ephemeral",  # this test is about the port; test_node_state.py covers two nodes on one state directory
    ]
    if port_file is not None:
        args += ["--port-file", str(port_file)]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen(args, cwd=ws.directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


def test_a_second_node_on_a_busy_port_exits_at_once_and_the_first_keeps_serving(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    # prepare: a first node listening on a port the OS picked
    first = _serve(workspace, simulated_platform_dir, port=0, port_file=tmp_path / "first.addr")
    try:
        address = _wait_for(tmp_path / "first.addr", first)
        port = int(address.rpartition(":")[2])

        # act: a second node on the same port
        started = time.monotonic()
        second = _serve(workspace, simulated_platform_dir, port=port)
        try:
            _, err = second.communicate(timeout=60)
        finally:
            if second.poll() is None:  # it bound the port after all: the failure below, not a stray process
                second.kill()
                second.communicate()
        took = time.monotonic() - started

        # assert: the second one said why and stopped; the first still answers attested calls
        assert second.returncode == ExitCode.IN_USE, err
        assert f"PortInUse: 127.0.0.1:{port} is already in use" in err
        assert "Traceback" not in err
        assert took < 30, f"the second node took {took:.1f} s to give up"
        session = ModelOwnerSession.connect(
            address, job=workspace.job, policy=workspace.policy, credentials=workspace.credentials("model-owner")
        )
        try:
            assert session.status().rounds_total == workspace.job.rounds
        finally:
            session.close()
        assert first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_a_port_held_by_any_socket_is_reported_as_in_use_and_a_bad_host_is_not() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        held = bind_error("127.0.0.1", port)
        bad_host = bind_error("host.invalid", port)

    assert isinstance(held, PortInUse)
    assert isinstance(bad_host, BindError) and not isinstance(bad_host, PortInUse)

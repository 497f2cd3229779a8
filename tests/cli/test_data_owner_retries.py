"""An unreachable node is never silence: every failed try says what failed, the next wait and the time left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from node_harness import Workspace, workspace
from safetensors.numpy import save_file
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import ProtocolError
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.reconnect import Reconnect, RetryNotice, reconnect_to_node

pytestmark = pytest.mark.filterwarnings("ignore")
__all__ = ["workspace"]
SRC = Path(__file__).resolve().parents[2] / "src"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_every_failed_try_is_reported_with_backoff_and_the_time_left() -> None:
    # prepare: a node that never answers, 10 s of patience
    clock = FakeClock()
    notices: list[RetryNotice] = []

    def connect() -> AttestedNode:
        clock.now += 0.1  # a refused TCP connect takes a moment
        raise ProtocolError("failed to connect to all addresses; last error: Connection refused")

    reconnect = Reconnect(connect=connect, give_up_after_seconds=10.0, on_retry=notices.append)

    # act
    with pytest.raises(ProtocolError, match=r"unreachable for 10 s \(\d+ attempts\)"):
        reconnect_to_node(reconnect, sleep=clock.sleep, monotonic=clock.monotonic)

    # assert: one notice per failed try but the last, waits doubling to 2 s, the time left shrinking
    assert [n.attempt for n in notices] == list(range(1, len(notices) + 1))
    assert clock.sleeps[:4] == [0.5, 1.0, 2.0, 2.0]
    assert all(a.gives_up_in_seconds > b.gives_up_in_seconds for a, b in pairwise(notices))
    first = notices[0].describe()
    assert "attempt 1: ProtocolError: failed to connect to all addresses" in first
    assert "retrying in 0.5 s, giving up in 10 s (--connect-timeout 10)" in first


def test_data_owner_run_against_a_closed_port_prints_each_retry_then_refuses(
    workspace: Workspace, tmp_path: Path
) -> None:
    # prepare: a port nobody listens on, valid files otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "alice.safetensors"
    save_file({"x": np.ones((2, 2), np.float32), "y": np.ones((2, 1), np.float32)}, str(data))
    key, cert = workspace.keys["alice"]

    # act
    result = CliRunner().invoke(
        app,
        [
            "data-owner",
            "run",
            "--node",
            f"127.0.0.1:{port}",
            "--job",
            str(workspace.job_file),
            "--policy",
            str(workspace.policy_file),
            "--task",
            "enclavefl.demos.seed:SEED_TASK",
            "--data",
            str(data),
            "--key",
            str(key),
            "--cert",
            str(cert),
            "--connect-timeout",
            "2",  # tries at 0, 0.5 and 1.5 s: two retries reported
        ],
    )

    # assert
    retries = [line for line in result.output.splitlines() if "node unreachable (attempt" in line]
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert len(retries) >= 2
    assert f"[alice] 127.0.0.1:{port}: node unreachable (attempt 1: ProtocolError" in retries[0]
    assert "giving up in 2 s (--connect-timeout 2)" in retries[0]
    assert "the node stayed unreachable for 2 s" in result.output


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_the_node_is_the_documented_status_without_a_traceback(
    workspace: Workspace, tmp_path: Path
) -> None:
    # prepare: a data owner retrying a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "alice.safetensors"
    save_file({"x": np.ones((2, 2), np.float32), "y": np.ones((2, 1), np.float32)}, str(data))
    key, cert = workspace.keys["alice"]
    args = [
        sys.executable,
        "-m",
        "enclavefl.cli.main",
        "data-owner",
        "run",
        "--node",
        f"127.0.0.1:{port}",
        "--job",
        str(workspace.job_file),
        "--policy",
        str(workspace.policy_file),
        "--task",
        "enclavefl.demos.seed:SEED_TASK",
        "--data",
        str(data),
        "--key",
        str(key),
        "--cert",
        str(cert),
        "--connect-timeout",
        "60",
    ]
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    owner = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    # act: Ctrl-C once it has said it is retrying
    try:
        assert owner.stdout is not None
        state = owner.stdout.readline()  # where its durable state is kept comes first, then the warm-up:
        warmed = owner.stdout.readline()  # both before any contact with the node
        first = owner.stdout.readline()
        owner.send_signal(signal.SIGINT)
        _, err = owner.communicate(timeout=30)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()

    # assert
    assert "[alice] keeping state in" in state
    assert "warmed up before joining" in warmed
    assert "node unreachable (attempt 1" in first
    assert owner.returncode == ExitCode.INTERRUPTED
    assert "Traceback" not in err
    assert "interrupted: exit 130" in err

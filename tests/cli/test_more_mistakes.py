"""Mistakes and accidents of issue 24 item 3 that cost a job or hid their cause: each is one clear line."""

from __future__ import annotations

import errno
import io
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
import torch
from node_harness import Workspace, in_threads, numpy_owner, workspace
from rich.console import Console

from enclavefl.cli.demo import insecure_banner
from enclavefl.demos.seed import SEED_TASK
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.owner.attested import connect_data_owner
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.task import TensorData
from enclavefl.transport.api import JobState

pytestmark = pytest.mark.filterwarnings("ignore")
__all__ = ["workspace"]


@pytest.mark.parametrize("width", [40, 60, 80, 100, 160])
def test_the_demos_insecure_banner_is_whole_at_every_terminal_width(width: int) -> None:
    screen = io.StringIO()
    console = Console(file=screen, width=width, soft_wrap=True)  # the demo's console keeps piped lines whole

    console.print(insecure_banner(), soft_wrap=False)

    shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", screen.getvalue()).split())
    assert "INSECURE SIMULATION: the secure worker runs in a simulated enclave." in shown
    assert "Use `--tee gramine` on SGX hardware for a real enclave." in shown  # its last words too


class FullDisk:
    """The node's checkpoint store on a disk that fills up once round 1 is sealed."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store

    def save(self, checkpoint: NodeCheckpoint) -> Path:
        if checkpoint.rounds_completed >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.store.save(checkpoint)

    def save_and_open(self, checkpoint: NodeCheckpoint) -> StoredModel:  # the node's sink: save, then serve from it
        return self.store.open_model(self.save(checkpoint))

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_a_full_disk_says_the_job_can_be_resumed_and_a_restart_resumes_it(workspace: Workspace) -> None:
    store = CheckpointStore(workspace.directory / "state", sealing_key=b"k" * 16, job_digest=workspace.job.digest())
    node = workspace.node(checkpoints=FullDisk(store), initial_model=_initial(workspace))
    try:
        for thread in list(
            in_threads(*(numpy_owner(workspace, node.address, n, v) for n, v in (("alice", 1), ("bob", 3))))
        ):
            thread.join(60)
        failed = node.wait(30)
    finally:
        node.stop(0)
    assert failed.job_state is JobState.FAILED
    assert failed.job_message.startswith("round 2: cannot write the sealed checkpoint: [Errno 28]")
    assert "the job can be resumed: free space" in failed.job_message
    assert failed.job_message.endswith("it resumes after round 1")

    restarted = workspace.node(checkpoints=store)  # the operator freed space: the same state, the same command
    try:
        for thread in list(
            in_threads(*(numpy_owner(workspace, restarted.address, n, v) for n, v in (("alice", 1), ("bob", 3))))
        ):
            thread.join(60)
        done = restarted.wait(30)
    finally:
        restarted.stop(0)
    assert done.job_state is JobState.FINISHED, done.job_message
    assert done.rounds_completed == 2


def _initial(ws: Workspace) -> object:
    from enclavefl.core.jobfile import read_initial_model

    return read_initial_model(ws.model_file)


def test_a_round_lost_to_ones_own_bad_update_is_said_to_that_owner_at_once(workspace: Workspace) -> None:
    ws = workspace.with_job(rounds=1, max_round_attempts=1, round_deadline_seconds=3.0)
    diverging = TensorData(x=torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), y=torch.tensor([[3.0], [2.0]]))
    heard: list[str] = []
    node = ws.node(initial_model=_initial(ws))

    def alice() -> None:
        attested = connect_data_owner(
            node.address, name="alice", job=ws.job, policy=ws.policy, credentials=ws.credentials("alice")
        )
        owner = DataOwner(name="alice", task=SEED_TASK, data=diverging, job=ws.job, report=heard.append)
        run_data_owner(owner, attested)

    try:
        runner = threading.Thread(target=alice, daemon=True)
        runner.start()
        runner.join(60)
        ended = node.wait(30)
    finally:
        node.stop(0)
    refused = [line for line in heard if "refused your update" in line]
    assert refused == [
        "[alice] round 1: the node refused your update: MalformedUpdate: metric 'train_loss' is not a finite number "
        "(your local training produced NaN or inf: check your data, its scaling and the learning rate); the round "
        "goes on without it and is lost if fewer than 2 updates arrive"
    ]
    assert ended.job_state is JobState.FAILED


@pytest.mark.slow
def test_the_process_example_run_a_second_time_trains_again_and_verifies(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    example = tmp_path / "seed-processes"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "seed-processes", example)
    env = {**os.environ, "PORT": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    runs = [
        subprocess.run(["bash", str(example / "run.sh")], capture_output=True, text=True, env=env, timeout=600)
        for _ in range(2)
    ]

    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
        assert "verified: final model sha256" in run.stdout
        assert "[bob] round 10 local losses: 5 steps" in run.stdout  # trained again, not a finished job served


def test_the_data_owner_api_with_a_missing_key_is_a_config_error_naming_key(workspace: Workspace) -> None:
    from enclavefl.api.data_owner import DataOwnerClient
    from enclavefl.errors import ConfigError

    _, cert = workspace.keys["alice"]
    missing = workspace.directory / "nope.key"
    with pytest.raises(ConfigError, match=f"--key {re.escape(str(missing))}: cannot read it: No such file"):
        DataOwnerClient(
            node="127.0.0.1:1", job=workspace.job_file, policy=workspace.policy_file, key=missing, cert=cert
        )


def test_a_state_directory_that_cannot_be_written_is_one_line_before_anything_is_sent(
    workspace: Workspace, tmp_path: Path
) -> None:
    """`data-owner run --state` where nothing can be written (an immutable directory stands in for a read-only
    filesystem: root ignores permission bits, not the immutable flag)."""
    from test_data_owner_cli import alice_data, run_args
    from typer.testing import CliRunner

    from enclavefl.cli.main import app
    from enclavefl.core.exit_codes import ExitCode

    state = tmp_path / "state"
    state.mkdir()
    if subprocess.run(["chattr", "+i", str(state)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available here: no way to make a directory unwritable for root")
    try:
        result = CliRunner().invoke(
            app, [*run_args(workspace, "127.0.0.1:1", data=alice_data(workspace)), "--state", str(state)]
        )
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)

    lines = [line for line in result.output.splitlines() if line.startswith("error")]
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert str(state) in lines[0] and "connect" not in result.output.lower(), result.output

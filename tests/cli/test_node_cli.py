"""`enclavefl node`: serve runs a job to its end (exit 0/1), policy pins this code; the enclave entry stays small."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from node_harness import Workspace, in_threads, numpy_owner, workspace
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import JobSpec, TrainConfig
from enclavefl.core.jobfile import read_initial_model
from enclavefl.enclave import main as aggregator_main
from enclavefl.host.node_tee import root_ca_file_name
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.verify.policy_file import load_policy

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


def wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text().strip()


def model_owner(ws: Workspace, port_file: Path, *, download: bool) -> threading.Thread:
    def run() -> None:
        address = wait_for_file(port_file)
        session = ModelOwnerSession.connect(
            address, job=ws.job, policy=ws.policy, credentials=ws.credentials("model-owner")
        )
        session.submit_initial_model(read_initial_model(ws.model_file))
        for _ in session.watch():
            pass
        if download:
            session.download_final()
        session.close()

    return next(in_threads(run))


def serve_args(ws: Workspace, platform_dir: Path, port_file: Path) -> list[str]:
    return [
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
        "--grace",
        "0",
        "--linger",
        "20",
    ]


def test_serve_runs_the_job_prints_each_round_seals_its_state_and_exits_zero(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    # prepare: the model owner and two data owners as threads, waiting for the node's port file
    port_file = tmp_path / "node.addr"
    owner = model_owner(workspace, port_file, download=True)

    def owners() -> None:
        address = wait_for_file(port_file)
        for thread in list(in_threads(*(numpy_owner(workspace, address, n, v) for n, v in (("alice", 1), ("bob", 3))))):
            thread.join(30)

    helper = next(in_threads(owners))

    # act
    state = tmp_path / "state"
    result = runner.invoke(app, [*serve_args(workspace, simulated_platform_dir, port_file), "--state", str(state)])

    # assert
    owner.join(10)
    helper.join(10)
    assert result.exit_code == 0, result.output
    assert sorted(state.glob("checkpoint-*.sealed"))  # sealed state a restarted node resumes from
    assert "INSECURE" in result.output
    assert "round 1/2 closed: 2 contributions" in result.output
    assert "job finished: all 2 rounds completed" in result.output


def test_serve_exits_one_when_a_round_fails(workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path) -> None:
    # prepare: nobody uploads, the round fails at its 1 s deadline and the job stops
    ws = workspace.with_job(on_round_failure="stop", round_deadline_seconds=1.0)
    port_file = tmp_path / "node.addr"
    owner = model_owner(ws, port_file, download=False)

    # act
    result = runner.invoke(app, serve_args(ws, simulated_platform_dir, port_file))

    # assert
    owner.join(10)
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "job failed: round 1 failed" in result.output


def test_a_final_model_nobody_fetched_is_kept_in_the_state_and_served_again(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    # prepare: the model owner runs the job but does not download; --linger runs out
    port_file = tmp_path / "node.addr"
    owner = model_owner(workspace, port_file, download=False)

    def owners() -> None:
        address = wait_for_file(port_file)
        for thread in list(in_threads(*(numpy_owner(workspace, address, n, v) for n, v in (("alice", 1), ("bob", 3))))):
            thread.join(30)

    helper = next(in_threads(owners))
    state = tmp_path / "state"
    args = [*serve_args(workspace, simulated_platform_dir, port_file), "--state", str(state)]
    args[args.index("--linger") + 1] = "0.5"

    # act: the job runs out its linger; then the same command again, and a download from the restarted node
    first = runner.invoke(app, args)
    owner.join(10)
    helper.join(10)
    port_file.unlink()
    fetched: list[str] = []
    fetch = model_owner_download(workspace, port_file, fetched)
    again = runner.invoke(app, args)
    fetch.join(10)

    # assert
    said = " ".join(first.output.split())
    assert first.exit_code == ExitCode.OK, first.output
    assert f"WARNING: nobody downloaded the final model within --linger 0.5 s; it is kept sealed in {state}" in said
    assert again.exit_code == ExitCode.OK, again.output
    # The last checkpoint is round 2's sealed one (a release writes the signatures beside it, not a new
    # checkpoint): the restarted node releases it again from the kept signatures, before or after it prints its
    # start line, so that line says either; what counts is that the final model is served.
    assert re.search(r"resumed[^()]*\(([12])/2 rounds done\)", " ".join(again.output.split())), again.output
    assert fetched == [workspace.job.name]  # the restarted node served the final model, verified by its receipts
    assert "WARNING: nobody downloaded" not in again.output


def model_owner_download(ws: Workspace, port_file: Path, fetched: list[str] | None = None) -> threading.Thread:
    def run() -> None:
        session = ModelOwnerSession.connect(
            wait_for_file(port_file), job=ws.job, policy=ws.policy, credentials=ws.credentials("model-owner")
        )
        session.download_final()
        session.close()
        if fetched is not None:
            fetched.append(ws.job.name)

    return next(in_threads(run))


def test_serve_simulation_without_a_platform_directory_is_a_usage_error(workspace: Workspace) -> None:
    result = runner.invoke(app, ["node", "serve", "--job", str(workspace.job_file), "--tee", "insecure-simulation"])

    assert result.exit_code == 2
    assert "--platform-dir" in result.output


def test_serve_gramine_asks_for_collateral_then_for_an_enclave(workspace: Workspace, tmp_path: Path) -> None:
    # prepare
    base = ["node", "serve", "--job", str(workspace.job_file), "--tee", "gramine"]
    collateral = tmp_path / "collateral.json"
    collateral.write_text("{}")

    # act
    without = runner.invoke(app, base)
    outside = runner.invoke(app, [*base, "--collateral", str(collateral)])

    # assert
    assert without.exit_code == 2 and "--collateral FILE" in without.output and "node agent" in without.output
    assert outside.exit_code == 2 and "TeeUnavailable" in outside.output


def test_policy_pins_this_codes_measurement_and_the_platform_root(tmp_path: Path, simulated_platform_dir: Path) -> None:
    out = tmp_path / "owners" / "policy.toml"

    result = runner.invoke(app, ["node", "policy", "--platform-dir", str(simulated_platform_dir), "--out", str(out)])

    assert result.exit_code == 0, result.output
    policy = load_policy(out)
    assert policy.allowed_mrenclaves == frozenset({measure_aggregator_code()})
    assert policy.simulation_allowed
    assert (out.parent / root_ca_file_name(policy.simulation_root_ca_der or b"")).exists()


def test_enclave_entry_refuses_the_simulated_backend_and_says_where_it_lives(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    code = aggregator_main.main(["--job", str(workspace.job_file), "--tee", "insecure-simulation"])

    assert code == ExitCode.CONFIG
    assert "enclavefl node serve --tee insecure-simulation" in capsys.readouterr().err


def test_enclave_entry_reports_a_bad_job_file_by_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.json"  # the canonical form, the one the enclave loads (core/job_canonical.py)
    text = JobSpec(name="x", rounds=1, train=TrainConfig(local_steps=1)).canonical_text()
    job.write_text(text.replace('"rounds":1', '"rounds":"three"'))

    code = aggregator_main.main(["--job", str(job), "--collateral", str(job)])

    assert code == ExitCode.CONFIG
    assert "JobSpecError: rounds: expected an integer, got 'three'" in capsys.readouterr().err


@pytest.mark.slow
def test_enclave_entry_imports_no_torch_typer_or_rich() -> None:
    code = (
        "import sys, enclavefl.enclave.main\n"
        "print(','.join(sorted(m for m in ('torch', 'typer', 'rich', 'matplotlib') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""

"""Issue 22 item 1: durable owner state is the default, locked per job, and opting out is explicit and INSECURE.

`data-owner run` with only the required options keeps its signed rounds, receipt chain and commitment salts in
this user's state directory for its key (tests/conftest.py points XDG_STATE_HOME at a temporary directory), says
where at start, and refuses to run twice for one job from one state directory. The model owner's `job` commands
remember the receipts they verified the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from node_harness import Workspace, in_threads, numpy_owner, workspace
from test_data_owner_cli import alice_data, run_args
from typer.testing import CliRunner

from enclavefl.api.model_owner import ModelOwnerClient
from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile import read_initial_model
from enclavefl.errors import ConfigError, StateDirInUse
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.owner.state_dir import (
    DATA_OWNER,
    MODEL_OWNER,
    default_state_dir,
    hold_owner_state,
    resolve_state_dir,
    state_home,
)

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
NOWHERE = "127.0.0.1:1"  # nothing listens: a command that got past its own checks would fail to connect


def alice_default_state(ws: Workspace) -> Path:
    return default_state_dir(certificate_pem=ws.keys["alice"][1].read_bytes(), role=DATA_OWNER)


def test_the_default_state_directory_is_per_user_and_per_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enclavefl.transport.owner_tls import OwnerCredentials

    pem = OwnerCredentials.generate("alice").certificate_pem
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir(certificate_pem=pem, role=DATA_OWNER) == (
        tmp_path / "xdg" / "enclavefl" / "data-owners" / hashlib.sha256(der).hexdigest()[:16]
    )
    assert default_state_dir(certificate_pem=pem, role=MODEL_OWNER).parent.name == "model-owners"
    for unusable in ("", "relative/dir"):  # the XDG rule: only an absolute XDG_STATE_HOME counts
        monkeypatch.setenv("XDG_STATE_HOME", unusable)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert state_home() == tmp_path / "home" / ".local" / "state" / "enclavefl"
    other = OwnerCredentials.generate("alice").certificate_pem  # another key under the same name: another directory
    assert default_state_dir(certificate_pem=other, role=DATA_OWNER) != default_state_dir(
        certificate_pem=pem, role=DATA_OWNER
    )


def test_state_and_the_insecure_opt_out_resolve_as_asked(tmp_path: Path) -> None:
    from enclavefl.transport.owner_tls import OwnerCredentials

    pem = OwnerCredentials.generate("alice").certificate_pem
    assert resolve_state_dir(tmp_path, certificate_pem=pem, role=DATA_OWNER) == tmp_path
    assert resolve_state_dir(None, certificate_pem=pem, role=DATA_OWNER, insecure_no_state=True) is None
    with pytest.raises(ConfigError, match="contradict"):
        resolve_state_dir(tmp_path, certificate_pem=pem, role=DATA_OWNER, insecure_no_state=True)


def test_one_jobs_state_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    job, other_job = b"\x01" * 32, b"\x02" * 32
    with hold_owner_state(tmp_path, job_digest=job) as first:
        with pytest.raises(StateDirInUse) as refused:
            hold_owner_state(tmp_path, job_digest=job)  # flock: a second open file is refused, even in-process
        assert str(first.path) in str(refused.value) and "\n" not in str(refused.value)
        hold_owner_state(tmp_path, job_digest=other_job).release()  # another job of the same owner runs alongside
    hold_owner_state(tmp_path, job_digest=job).release()  # released: the owner can run again


def test_data_owner_run_on_default_flags_keeps_its_state_and_says_where(workspace: Workspace) -> None:
    ws = workspace
    node = ws.node(initial_model=read_initial_model(ws.model_file))
    try:
        (bob,) = in_threads(numpy_owner(ws, node.address, "bob", 3.0))
        result = runner.invoke(app, run_args(ws, node.address, data=alice_data(ws)))
        bob.join(10)
    finally:
        node.stop(0)

    assert result.exit_code == 0, result.output
    state = alice_default_state(ws)
    assert f"[alice] keeping state in {state}" in result.output
    receipts = json.loads((state / f"receipts-{ws.job.digest().hex()[:16]}.json").read_text())
    assert sorted(receipts["signed"]) == ["1", "2"]  # every round alice signed, on disk for a restart
    assert (state / f"commitments-{ws.job.digest().hex()[:16]}.json").exists()
    tracker = PersistentReceiptTracker.open(state, job_digest=ws.job.digest())
    assert tracker.signed_rounds.last_round == 2 and tracker.head_round == 2


def test_a_second_data_owner_process_for_the_job_is_refused_with_the_lock_named(workspace: Workspace) -> None:
    ws = workspace
    state = alice_default_state(ws)
    with hold_owner_state(state, job_digest=ws.job.digest()) as running:  # alice's first process, still running
        result = runner.invoke(app, run_args(ws, NOWHERE, data=alice_data(ws)))

    assert result.exit_code == ExitCode.IN_USE, result.output
    (line,) = [x for x in result.output.splitlines() if "StateDirInUse" in x]
    assert str(running.path) in line and "stop it first" in line
    assert "attest" not in result.output  # refused before the node was contacted


def test_the_insecure_opt_out_keeps_nothing_and_says_so_loudly(workspace: Workspace) -> None:
    ws = workspace
    args = run_args(ws, NOWHERE, data=alice_data(ws))
    args[args.index("--connect-timeout") + 1] = "0"

    result = runner.invoke(app, [*args, "--insecure-no-state"])

    assert "WARNING: INSECURE: --insecure-no-state keeps nothing on disk" in result.output
    assert "keeping state in" not in result.output
    assert not (state_home() / "data-owners").exists()
    both = runner.invoke(app, [*args, "--insecure-no-state", "--state", str(ws.directory / "s")])
    assert both.exit_code == ExitCode.CONFIG and "contradict" in both.output


def test_the_model_owner_remembers_the_chain_by_default_and_a_second_command_reads_it(workspace: Workspace) -> None:
    ws = workspace
    key, cert = ws.keys["model-owner"]
    node = ws.node()
    try:
        threads = list(in_threads(*(numpy_owner(ws, node.address, n, v) for n, v in (("alice", 1), ("bob", 3)))))
        common = ["--node", node.address, "--job", str(ws.job_file), "--policy", str(ws.policy_file)]
        common += ["--key", str(key), "--cert", str(cert)]
        assert runner.invoke(app, ["job", "submit", *common, "--model", str(ws.model_file)]).exit_code == 0
        assert runner.invoke(app, ["job", "watch", *common]).exit_code == 0
        for thread in threads:
            thread.join(10)
        state = default_state_dir(certificate_pem=cert.read_bytes(), role=MODEL_OWNER)
        memory = state / f"receipts-{ws.job.digest().hex()[:16]}.json"
        assert PersistentReceiptTracker.open(state, job_digest=ws.job.digest()).head_round == 2
        before = memory.read_bytes()

        first = ModelOwnerClient.connect(node.address, job=ws.job, policy=ws.policy, key=key, cert=cert)
        try:  # another command while `first` holds the memory: it checks against it, read-only
            second = ModelOwnerClient.connect(node.address, job=ws.job, policy=ws.policy, key=key, cert=cert)
            second.close()
            status = runner.invoke(app, ["job", "status", *common])
        finally:
            first.close()
    finally:
        node.stop(0)

    assert status.exit_code == 0, status.output
    assert first.state_dir == second.state_dir == state
    assert isinstance(first.session.tracker, PersistentReceiptTracker) and not first.session.tracker.read_only
    assert isinstance(second.session.tracker, PersistentReceiptTracker) and second.session.tracker.read_only
    assert memory.read_bytes() == before  # the read-only commands wrote nothing


def test_ledger_show_reads_the_default_state_directory_from_the_certificate(workspace: Workspace) -> None:
    ws = workspace
    cert = ws.keys["alice"][1]
    state = alice_default_state(ws)
    state.mkdir(parents=True)

    shown = runner.invoke(app, ["data-owner", "ledger", "show", "--cert", str(cert)])
    neither = runner.invoke(app, ["data-owner", "ledger", "show"])

    assert shown.exit_code == 0, shown.output
    # the key's default directory, on one line however long the path (it is not wrapped into the table's title)
    path_line = next(line for line in shown.output.splitlines() if line.startswith("ledger file: "))
    assert "privacy ledger" in shown.output and path_line.removeprefix("ledger file: ").startswith(str(state))
    assert neither.exit_code == ExitCode.CONFIG and "--cert" in neither.output

"""Issue 22 item 7: crash timing against the lifetime privacy ledger. Can a job spend without being charged?

The attack: alice runs `enclavefl data-owner run` as a real process with a lifetime budget (`--site-policy`) and a
state directory; the host kills it with SIGKILL (no cleanup, no flush) at the worst moments:
- right after the ledger shows the job charged, before the update leaves;
- after the node holds alice's update for round 1 and before the round's receipt (bob has not uploaded, so the
  round cannot close: alice waits for the receipt when she is killed).
After each kill, the ledger on disk must parse and hold the job's full charge, and every update the node holds
from alice must be recorded in it. Found on main: this holds (the job is charged in full, durably, before the
first connection; each upload is recorded durably before it leaves); the test keeps it so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dp_tables import dp_table
from node_harness import Workspace, workspace
from test_data_owner_cli import alice_data, run_args

from enclavefl.core.jobfile import read_initial_model
from enclavefl.owner.attested import connect_data_owner
from enclavefl.owner.ledger import LEDGER_FILE, PrivacyLedger
from enclavefl.owner.site_policy import SitePolicy

pytestmark = pytest.mark.filterwarnings("ignore")
__all__ = ["workspace"]
CLI = shutil.which("enclavefl", path=str(Path(sys.executable).parent)) or "enclavefl"


def start_alice(ws: Workspace, address: str, state: Path) -> subprocess.Popen[bytes]:
    site_policy = ws.directory / "site-policy.toml"
    site_policy.write_text("allow_simulated_enclave = true\nlifetime_epsilon = 1000000.0\n")
    args = [*run_args(ws, address, data=alice_data(ws)), "--site-policy", str(site_policy), "--state", str(state)]
    return subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(condition: object, what: str, alice: subprocess.Popen[bytes], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if alice.poll() is not None:
            raise AssertionError(f"alice exited ({alice.returncode}) before {what}: {alice.stdout.read().decode()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def charged(state: Path) -> bool:
    try:
        return bool(PrivacyLedger.open(state).jobs)
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["after the charge", "between upload and receipt"])
def test_a_sigkill_never_lets_a_job_spend_without_being_charged(workspace: Workspace, moment: str) -> None:
    ws = workspace.with_job(name=f"crash-{moment[:5]}", dp=dp_table(2, noise_multiplier=2.0))
    state = ws.directory / "alice-state"
    node = ws.node(initial_model=read_initial_model(ws.model_file))
    try:
        bob = connect_data_owner(
            node.address, name="bob", job=ws.job, policy=ws.policy, credentials=ws.credentials("bob")
        )
        alice = start_alice(ws, node.address, state)
        try:
            if moment == "after the charge":
                wait_for(lambda: (state / LEDGER_FILE).exists() and charged(state), "the charge", alice)
            else:
                wait_for(lambda: bob.client.node_status().contributions >= 1, "alice's upload", alice)
            os.kill(alice.pid, signal.SIGKILL)
            alice.wait(10)
        finally:
            if alice.poll() is None:
                alice.kill()
        held = bob.client.node_status().contributions  # bob never uploaded: every contribution is alice's
    finally:
        node.stop(0)

    ledger = PrivacyLedger.open(state)  # parses: the file is never torn
    (job,) = ledger.jobs
    assert job.digest == ws.job.digest().hex() and job.rounds == ws.job.rounds  # charged in full for the job
    assert ledger.spent(SitePolicy(lifetime_epsilon=1e6)) > 0
    assert len(job.uploads) >= held, f"the node holds {held} update(s) of alice, the ledger records {len(job.uploads)}"
    if moment == "between upload and receipt":
        assert held == 1 and len(job.uploads) == 1

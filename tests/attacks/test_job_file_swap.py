"""Issue 22 item 7: the job file changed between the data owner's policy check and its attestation.

The attack: the host (which controls the disk alice's job file sits on) keeps replacing `job.toml` between the
agreed job A (K = 2) and its own job B (K = 1: one owner's update released as it is), and runs the node on job B.
If the owner read the file once for its site-policy check and again for attestation, it would check A and attest
B. It reads the file once: whichever version it read is the job it checks *and* the job whose digest the node's
quote must bind, so it either refuses B by its site policy (exit 5) or refuses the node running B at attestation
(JobDigestMismatch, exit 3), and never sends an update. Found on main: this holds; the test keeps it so.
"""

from __future__ import annotations

import os
import threading

import pytest
from node_harness import Workspace, workspace
from test_data_owner_cli import alice_data, run_args
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.jobfile import read_initial_model
from enclavefl.core.jobfile_write import dump_job
from enclavefl.owner.attested import connect_data_owner

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


def test_a_job_file_swapped_under_the_owner_is_never_checked_as_one_job_and_attested_as_another(
    workspace: Workspace,
) -> None:
    agreed = dump_job(workspace.job)
    hosts = workspace.with_job(min_contributions=1)  # job B; with_job also wrote it to the job file
    node = hosts.node(initial_model=read_initial_model(hosts.model_file))
    site_policy = workspace.directory / "site-policy.toml"
    site_policy.write_text("allow_simulated_enclave = true\nmin_contributions = 2\n")
    stop = threading.Event()

    def swap() -> None:  # atomic renames: every read sees a whole file, A or B
        staged = workspace.directory / "job.staged"
        versions = [agreed, dump_job(hosts.job)]
        i = 0
        while not stop.is_set():
            staged.write_text(versions[i % 2])
            os.replace(staged, workspace.job_file)
            i += 1

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        args = [*run_args(workspace, node.address, data=alice_data(workspace)), "--site-policy", str(site_policy)]
        results = [runner.invoke(app, args) for _ in range(3)]
        stop.set()
        swapper.join(5)
        bob = connect_data_owner(
            node.address, name="bob", job=hosts.job, policy=hosts.policy, credentials=hosts.credentials("bob")
        )
        contributions = bob.client.node_status().contributions
    finally:
        stop.set()
        node.stop(0)

    for result in results:
        assert result.exit_code in (3, 5), result.output
        assert ("JobDigestMismatch" in result.output) or ("site policy min_contributions" in result.output)
    assert contributions == 0  # alice sent nothing to the node running job B

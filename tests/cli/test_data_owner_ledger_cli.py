"""A data owner's lifetime budget holds across jobs: two DP jobs run through `data-owner run`, the third is
refused by the owner's own ledger before it opens a single connection; `ledger show` lists what was spent."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from dp_tables import dp_table
from node_harness import Workspace, in_threads, numpy_owner, workspace
from test_data_owner_cli import alice_data, run_args
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.jobfile import read_initial_model
from enclavefl.owner.ledger import PrivacyLedger
from enclavefl.owner.site_policy import SitePolicy

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
SIGMA = 2.0


class CountingListener:
    """A TCP port that accepts and counts connections (and says nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


def lifetime_budget_for_two_jobs(ws: Workspace, state: Path) -> float:
    """Between what two and three of these jobs spend together."""
    site = SitePolicy(lifetime_epsilon=1e9)
    probe = PrivacyLedger.open(state.parent / "probe")
    totals = []
    for name in ("a", "b", "c"):
        job = ws.with_job(name=f"probe-{name}", dp=dp_table(2, noise_multiplier=SIGMA)).job
        totals.append(probe.charge_job(job, site))
    return (totals[1] + totals[2]) / 2


def run_job(ws: Workspace, extra: list[str]) -> str:
    node = ws.node(initial_model=read_initial_model(ws.model_file))
    try:
        bob = next(in_threads(numpy_owner(ws, node.address, "bob", 0.5)))
        result = runner.invoke(app, [*run_args(ws, node.address, data=alice_data(ws)), *extra])
        bob.join(10)
    finally:
        node.stop(0)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_lifetime_budget_admits_two_jobs_and_refuses_the_third_before_any_connection(workspace: Workspace) -> None:
    # prepare: a site policy whose lifetime budget fits two of these DP jobs but not three
    state = workspace.directory / "alice-state"
    budget = lifetime_budget_for_two_jobs(workspace, state)
    site_policy = workspace.directory / "site-policy.toml"
    site_policy.write_text(f"allow_simulated_enclave = true\nlifetime_epsilon = {budget!r}\n")
    extra = ["--site-policy", str(site_policy), "--state", str(state)]

    # act: two jobs run to the end; the third meets a port that only counts connections
    for name in ("job-1", "job-2"):
        run_job(workspace.with_job(name=name, dp=dp_table(2, noise_multiplier=SIGMA)), extra)
    third = workspace.with_job(name="job-3", dp=dp_table(2, noise_multiplier=SIGMA))
    listener = CountingListener()
    refused = runner.invoke(app, [*run_args(third, listener.address, data=alice_data(third)), *extra])
    show = ["data-owner", "ledger", "show", "--state", str(state), "--site-policy", str(site_policy)]
    shown = runner.invoke(app, show)

    # assert
    assert refused.exit_code == 5, refused.output
    assert "refused by your own limits, nothing was sent: LifetimeBudgetExceeded" in refused.output
    assert listener.accepted == 0
    ledger = PrivacyLedger.open(state)
    assert [j.name for j in ledger.jobs] == ["job-1", "job-2"]
    assert [len(j.uploads) for j in ledger.jobs] == [2, 2]
    assert shown.exit_code == 0, shown.output
    assert "job-1" in shown.output and "job-2" in shown.output and "job-3" not in shown.output
    assert f"of {budget:g} at delta" in shown.output


def test_a_job_outside_the_site_policy_exits_5_naming_the_field_before_any_connection(workspace: Workspace) -> None:
    site_policy = workspace.directory / "site-policy.toml"
    site_policy.write_text("allow_simulated_enclave = true\nrequire_dp = true\n")
    listener = CountingListener()

    result = runner.invoke(
        app, [*run_args(workspace, listener.address, data=alice_data(workspace)), "--site-policy", str(site_policy)]
    )

    assert result.exit_code == 5, result.output
    assert "SitePolicyRefused: site policy require_dp: the job has no differential privacy" in result.output
    assert listener.accepted == 0


def test_site_policy_init_writes_a_policy_that_loads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "site-policy.toml"

    first = runner.invoke(app, ["data-owner", "site-policy", "init", "--out", str(out)])
    again = runner.invoke(app, ["data-owner", "site-policy", "init", "--out", str(out)])

    assert first.exit_code == 0, first.output
    assert SitePolicy.load(out).require_dp
    assert again.exit_code == 2 and "not overwriting" in again.output

"""Issue 22 item 4: a data owner's site policy bounds who shares its job, how often a round may run and which model
it trains, and `data-owner run` refuses a job outside those bounds before it opens a single connection.

The attacks, each a job file the model owner hands to alice (`data-owner run` through the real CLI):
- sybils: the model owner enrolls two keys of its own next to alice with K = 2, so it can form every aggregate
  with alice's update and its own known ones, and subtract; alice lists her co-owners by certificate;
- retries: `max_round_attempts = 50`, so one round may ask alice for up to 50 updates (the lever of item 2);
- batches of one example, whose gradients reveal their examples most easily.
(The architecture allow-list, `model_schemas`, is refused the same way: tests/owner/test_site_policy.py; through
the CLI the task's own model must already match the job's schema.)
On the old code the site policy had no key for any of these (an unknown key was a ConfigError, exit 2), so the job
could only be accepted; now each is refused with exit 5 naming the key, and nothing connects to the node.
"""

from __future__ import annotations

import dataclasses
import socket
import threading

import pytest
from node_harness import Workspace, workspace
from test_data_owner_cli import alice_data, run_args
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.job import DataOwnerSpec
from enclavefl.owner.site_limits import schema_digest
from enclavefl.owner.site_policy import SitePolicy, certificate_fingerprint
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


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


def alice_site_policy(ws: Workspace) -> str:
    """What alice agreed to: these co-owners, at most 3 attempts per round, this architecture."""
    owners = ", ".join(f'"{certificate_fingerprint(ws.keys[n][1].read_text())}"' for n in ("alice", "bob"))
    return (
        "allow_simulated_enclave = true\n"
        f"co_owners = [{owners}]\n"
        "min_distinct_owners = 2\n"
        "max_round_attempts = 3\n"
        "min_batch_size = 2\n"
        f'model_schemas = ["{schema_digest(ws.job.model_schema)}"]\n'  # type: ignore[arg-type]
    )


def sybils(ws: Workspace) -> Workspace:
    fakes = tuple(
        DataOwnerSpec(name=f"sybil{i}", certificate_pem=OwnerCredentials.generate(f"s{i}").certificate_pem.decode())
        for i in range(2)
    )
    return ws.with_job(data_owners=(ws.job.data_owners[0], *fakes))


def many_attempts(ws: Workspace) -> Workspace:
    return ws.with_job(max_round_attempts=50)


def tiny_batches(ws: Workspace) -> Workspace:
    return ws.with_job(train=dataclasses.replace(ws.job.train, batch_size=1))


@pytest.mark.parametrize(
    ("attack", "key"),
    [(sybils, "co_owners"), (many_attempts, "max_round_attempts"), (tiny_batches, "min_batch_size")],
)
def test_a_job_outside_the_site_bounds_is_refused_before_any_connection(
    workspace: Workspace, attack: object, key: str
) -> None:
    site_policy = workspace.directory / "site-policy.toml"
    site_policy.write_text(alice_site_policy(workspace))
    SitePolicy.load(site_policy).check_job(workspace.job, workspace.policy)  # the agreed job passes (raises if not)
    listener = CountingListener()
    attacked = attack(workspace)  # type: ignore[operator]

    result = runner.invoke(
        app, [*run_args(attacked, listener.address, data=alice_data(attacked)), "--site-policy", str(site_policy)]
    )

    assert result.exit_code == 5, result.output
    assert f"SitePolicyRefused: site policy {key}: the job has " in result.output
    assert listener.accepted == 0

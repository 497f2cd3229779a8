"""Issue 22 item 1: the operator rolls the node back and gets owners restarted; with every party on DEFAULT flags,
round r is released once and no owner's update can be recovered.

The attack, as the host runs it: three data owners (alice, bob, carol), K = 2, unweighted FedAvg, every party
started with its default flags (`enclavefl node serve` with its default state directory, `enclavefl data-owner run`
with nothing but the required options). The job runs to its end; round 3's aggregate M1 = (A + B + C) / 3 is
released. The operator then rolls the node back to its sealed checkpoint before round 3's release (it keeps the
last two; it deletes the newer one) and restarts it, and the owners are asked to rejoin (a machine rebooted, an
owner exited with "retry later"); carol does not come back. An owner that forgot what it signed uploads round 3
again, the round closes at its deadline with alice and bob, and M2 = (A + B) / 2 is released:
3·M1 − 2·M2 = C, carol's exact update. With durable owner state by default, alice and bob remember that they
signed round 3 (and the chain up to it) and refuse the rolled-back node: round 3 is released once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from federation_setup import TASK, tiny_federation

from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.receipts import SignedReceipt
from enclavefl.demos.process_federation import (
    FederationFiles,
    ProcessGroup,
    data_owner_command,
    model_owner_session,
    node_command,
    run_federation,
    wait_for_address,
)
from enclavefl.errors import EnclaveFLError
from enclavefl.transport.api import NodeStatus

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(300)]
ROUND = 3  # the last round: the job ends with it, and the operator rolls back to just before its release
REJOINING = ("owner-00", "owner-01")  # alice and bob come back; carol (owner-02) does not


def node_state(files: FederationFiles) -> Path:
    """The node's default state directory (`node serve` without --state): beside the job file."""
    (state,) = files.directory.glob("node-state-*")
    return state


def roll_back_before_round(state: Path, round_index: int) -> None:
    """The host deletes the newest sealed checkpoint and its kept signatures: the node resumes before the release."""
    newest = [state / f"checkpoint-{round_index:08d}.sealed", state / f"acks-{round_index:08d}.json"]
    assert all(p.exists() for p in newest), sorted(p.name for p in state.iterdir())
    assert (state / f"checkpoint-{round_index - 1:08d}.sealed").exists()  # the node keeps the one before
    for path in newest:
        path.unlink()


def released_round_receipts(files: FederationFiles, address: str) -> tuple[NodeStatus, list[SignedReceipt]]:
    """What the colluding model owner can fetch from the (rolled-back) node: its status and round-3 receipts."""
    session = model_owner_session(files, address)
    try:
        status = session.status()
        return status, [r for r in session.node.client.receipts() if r.receipt.round == ROUND]
    finally:
        session.close()


def test_owners_on_default_flags_refuse_a_rolled_back_node_and_round_3_is_released_once(tmp_path: Path) -> None:
    # prepare: the whole job once, every party on its default flags; the owners' state goes to XDG_STATE_HOME
    state_home = Path(os.environ["XDG_STATE_HOME"])  # tests/conftest.py: a temporary directory per test
    files = tiny_federation(
        tmp_path / "fed", owners=3, rounds=ROUND, min_contributions=2, deadline=4.0, platform_dir=tmp_path / "platform"
    )
    first = run_federation(files, task=TASK, timeout=200.0)
    (released,) = [r for r in first.final.receipts if r.round == ROUND]
    assert released.contributions == 3  # M1 = (A + B + C) / 3
    for name in files.owners:  # each owner said where its state lives, and it is under the user's state home
        assert any(f"keeping state in {state_home}" in line for line in first.output[name]), first.output[name]

    # act: the operator rolls the node back to before round 3's release and restarts it; alice and bob rejoin
    roll_back_before_round(node_state(files), ROUND)
    with ProcessGroup() as group:
        node = group.start("node", node_command(files, port_file=files.directory / "node-2.addr"))
        address = wait_for_address(files.directory / "node-2.addr", node)
        status, _ = released_round_receipts(files, address)
        assert (status.rounds_completed, status.round) == (ROUND - 1, ROUND)  # the rollback took: round 3 re-opened
        owners = {n: group.start(n, data_owner_command(files, n, address, task=TASK)) for n in REJOINING}
        codes = {n: child.wait(120.0) for n, child in owners.items()}
        time.sleep(1.0)  # a re-run round 3 would close at its 4 s deadline; the owners have been gone at least that
        try:
            status, receipts = released_round_receipts(files, address)
        except EnclaveFLError as exc:  # the node went away: it could only have finished a re-run job
            raise AssertionError(f"the rolled-back node stopped: {exc}{node.tail()}") from exc

    # assert: both owners refused from their durable state; the node never released round 3 a second time
    assert receipts == [], (
        f"round {ROUND} was released again ({[r.receipt.contributions for r in receipts]} contributions): "
        "3·M1 − 2·M2 is the missing owner's exact update"
    )
    assert status.rounds_completed == ROUND - 1 and status.contributions == 0, status
    for name, code in codes.items():
        output = "\n".join(owners[name].lines)
        assert code == ExitCode.REFUSED, f"{name} exited {code}:\n{output}"
        assert "RollbackDetected" in output or "RoundAlreadySigned" in output, output

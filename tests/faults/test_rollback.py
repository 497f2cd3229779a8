"""A host that restarts the node from a copied older checkpoint, or from a renamed or tampered one, is refused."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fault_harness import FaultFederation
from fault_task import OWNERS

from enclavefl.enclave.receipt_log import LOG_NAME
from enclavefl.errors import RollbackDetected
from enclavefl.transport.api import JobState

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(150)]


def snapshot_when_newest(fed: FaultFederation, round_index: int, into: Path, *, timeout: float = 60.0) -> None:
    """Copy the node's state as soon as the checkpoint of `round_index` is the newest (the host's copy): the
    checkpoint and the sealed receipt log it names (records past it, if any, are ignored at resume)."""
    wanted = fed.state / f"checkpoint-{round_index:08d}.sealed"
    deadline = time.monotonic() + timeout
    while not wanted.exists():
        assert time.monotonic() < deadline, fed.log_tail()
        time.sleep(0.005)
    into.mkdir()
    shutil.copy2(wanted, into / wanted.name)
    shutil.copy2(fed.state / LOG_NAME, into / LOG_NAME)


def test_a_node_restarted_from_a_copied_older_checkpoint_is_refused_by_every_owner(
    fault_federation: FaultFederation,
) -> None:
    fed = fault_federation
    old = fed.root / "host-copy"
    fed.start_node()
    for name in OWNERS:  # round 4 waits for them: round 3's checkpoint stays the newest while the host copies it
        fed.start_owner(name, hold_round=4, hold_seconds=2.0)
    snapshot_when_newest(fed, 3, old)
    fed.wait_for("round 6 to close", lambda s: s.rounds_completed >= 6)
    fed.session().receipts()  # the model owner verified the chain up to round >= 6
    assert fed.node is not None

    fed.sigkill(fed.node)
    shutil.rmtree(fed.state)
    shutil.copytree(old, fed.state)  # the host puts back its older copy: a valid, sealed round-3 checkpoint
    fed.start_node()

    for name in OWNERS:
        assert fed.wait_exit(fed.owners[name]) == 3, fed.log_tail()  # 3: RollbackDetected
    owner_logs = [p.read_text() for name in OWNERS for p in fed.logs.glob(f"*-{name}.log")]
    # they signed rounds after 3: a node whose chain ends before them was rolled back (RollbackDetected's leaf)
    assert sum("RoundAlreadySigned: this owner signed receipt" in text for text in owner_logs) == len(OWNERS)
    status = fed.wait_for("the restarted node", lambda s: s.job_state is JobState.RUNNING)
    # it did resume from the copy: round 3 as sealed, asking again for its signatures ...
    assert (status.rounds_completed, status.round, status.phase.value) == (2, 3, "signing")
    with pytest.raises(RollbackDetected):
        fed.session().receipts()  # ... and the model owner refuses it as well


def test_a_renamed_checkpoint_is_refused_at_start_and_nothing_is_loaded(fault_federation: FaultFederation) -> None:
    fed = fault_federation
    fed.start_all()
    snapshot_when_newest(fed, 2, fed.root / "host-copy")
    assert fed.node is not None
    fed.sigkill(fed.node)
    shutil.rmtree(fed.state)
    fed.state.mkdir()
    shutil.copy2(fed.root / "host-copy" / "checkpoint-00000002.sealed", fed.state / "checkpoint-00000009.sealed")

    node = fed.start_node()

    assert fed.wait_exit(node) == 2
    log = sorted(fed.logs.glob("*-node.log"))[-1].read_text()
    assert "CheckpointError: checkpoint-00000009.sealed holds round 2: the file was renamed" in log


def test_a_tampered_checkpoint_is_refused_at_start(fault_federation: FaultFederation) -> None:
    fed = fault_federation
    fed.start_node()
    fed.wait_for("the node to accept the initial model", lambda s: s.job_state is JobState.RUNNING)
    assert fed.node is not None
    fed.sigkill(fed.node)
    path = fed.state / "checkpoint-00000000.sealed"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    node = fed.start_node()

    assert fed.wait_exit(node) == 2
    log = sorted(fed.logs.glob("*-node.log"))[-1].read_text()
    assert "CheckpointError:" in log and "does not open for this job and enclave" in log

"""Issue 10 §1: the operator rolls back or forks the enclave to release two aggregates of one round, and fails.

Owners alice (A), bob (B) and carol (C), K = 2, each behind its own proxy that the operator drives. In round 3
A and B upload, the operator cuts them, C uploads, the round closes (sealed, receipt R signed by the node).
Today's attack: release agg(A,B,C), roll the node back to round 2, re-run round 3 with A and B only, and
subtract. With two phases no aggregate leaves before its contributors signed R, and a signer never uploads
round 3 again, so the colluder (the model owner, who also runs the node) gets at most one aggregate of round 3.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_harness import FaultFederation, federation_in, free_port
from fault_proxy import FaultyProxy
from fault_task import ALL_OWNERS, fault_policy

from enclavefl.core.receipt_checks import find_conflicting_receipts
from enclavefl.core.receipts import SignedReceipt
from enclavefl.enclave.receipt_log import LOG_NAME
from enclavefl.errors import ConflictingReceipts, EnclaveFLError
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.transport.api import NodeStatus

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(150)]
ROUND = 3
A, B, C = ALL_OWNERS


@pytest.fixture
def federation(tmp_path: Path, simulated_platform_dir: Path, sim_enclave: object) -> Iterator[FaultFederation]:
    yield from federation_in(
        tmp_path,
        simulated_platform_dir,
        fault_policy(simulated_platform_dir),
        owners=ALL_OWNERS,
        round_deadline_seconds=8.0,  # > C's hold: round 3 closes when C uploads, a re-run without C at this deadline
    )


@pytest.fixture
def proxies(federation: FaultFederation) -> Iterator[dict[str, FaultyProxy]]:
    made = {name: FaultyProxy(federation.node_port) for name in ALL_OWNERS}
    for name, proxy in made.items():
        federation.owner_addresses[name] = f"127.0.0.1:{proxy.port}"
    yield made
    for proxy in made.values():
        proxy.close()


class Colluder:
    """The model owner, who also runs the node: records every round-3 receipt any node process ever released."""

    def __init__(self, fed: FaultFederation) -> None:
        self.fed = fed
        self.released: dict[bytes, SignedReceipt] = {}
        self.node_key_pem = b""  # the attested key of the node (both copies of a fork share it)

    def look(self, port: int) -> NodeStatus | None:
        try:
            session = ModelOwnerSession.connect(
                f"127.0.0.1:{port}",
                job=self.fed.job,
                policy=self.fed.policy,
                credentials=self.fed.model_owner_credentials,
            )
        except EnclaveFLError:
            return None  # that node process is down
        self.node_key_pem = session.node.node_public_key_pem
        try:
            status = session.status()
            for signed in session.node.client.receipts():
                if signed.receipt.round == ROUND:
                    self.released[signed.sha256] = signed
            return status
        except EnclaveFLError:
            return None
        finally:
            session.close()

    def wait(self, port: int, what: str, predicate: object, timeout: float = 60.0) -> NodeStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.look(port)
            if status is not None and predicate(status):  # type: ignore[operator]
                return status
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.fed.log_tail()}")


def snapshot_round_2(fed: FaultFederation, into: Path) -> None:
    """The host's copy of the node's state once round 2 is released: its sealed checkpoint, the sealed receipt log
    the checkpoint names, and the kept signatures."""
    wanted = [fed.state / "checkpoint-00000002.sealed", fed.state / "acks-00000002.json", fed.state / LOG_NAME]
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in wanted):
        assert time.monotonic() < deadline, fed.log_tail()
        time.sleep(0.005)
    assert not (fed.state / f"checkpoint-{ROUND:08d}.sealed").exists()  # C holds round 3 open: still in the window
    into.mkdir()
    for path in wanted:
        shutil.copy2(path, into / path.name)


def seal_round_3_with_a_and_b_cut(fed: FaultFederation, proxies: dict[str, FaultyProxy], colluder: Colluder) -> None:
    """Round 3: A and B upload, the operator cuts them, C uploads; the node seals R and C signs it."""
    colluder.wait(
        fed.node_port,
        "A and B in round 3",
        lambda s: s.round == ROUND and s.phase.value == "open" and s.contributions >= 2,
    )
    proxies[A].block()
    proxies[B].block()
    status = colluder.wait(
        fed.node_port,
        "round 3 sealed and signed by C",
        lambda s: s.phase.value == "signing" and "waiting for 2 owner signature" in s.job_message,
    )
    assert (status.round, status.rounds_completed) == (ROUND, ROUND - 1)
    assert colluder.released == {}  # sealed and signed by C, nothing of it released


def start(fed: FaultFederation) -> None:
    fed.start_node()
    for name in (A, B):
        fed.start_owner(name)
    fed.start_owner(C, hold_round=ROUND, hold_seconds=3.5)  # keeps round 3 open after A and B uploaded


def signed_by(fed: FaultFederation, name: str, round_index: int) -> SignedReceipt | None:
    tracker = PersistentReceiptTracker.open(fed.owner_state(name), job_digest=fed.job.digest())
    return tracker.signed_rounds.signed(round_index)


def owner_log(fed: FaultFederation, name: str) -> str:
    return "\n".join(p.read_text() for p in sorted(fed.logs.glob(f"*-{name}.log")))


def test_signers_refuse_to_upload_a_round_again_after_the_node_is_rolled_back(
    federation: FaultFederation, proxies: dict[str, FaultyProxy]
) -> None:
    fed, colluder = federation, Colluder(federation)
    start(fed)
    snapshot_round_2(fed, fed.root / "host-copy")
    seal_round_3_with_a_and_b_cut(fed, proxies, colluder)
    proxies[A].unblock()  # the operator lets A and B sign: agg(A,B,C) is released
    proxies[B].unblock()
    colluder.wait(fed.node_port, "round 3 released", lambda s: s.rounds_completed >= ROUND)
    assert len(colluder.released) == 1 and next(iter(colluder.released.values())).receipt.contributions == 3
    assert fed.node is not None

    fed.sigkill(fed.node)  # the operator rolls the node back to round 2, same key, and restarts it
    shutil.rmtree(fed.state)
    shutil.copytree(fed.root / "host-copy", fed.state)
    fed.start_node()

    for name in ALL_OWNERS:  # every owner signed round 3: none uploads it again
        assert fed.wait_exit(fed.owners[name]) == 3, fed.log_tail()  # 3: RollbackDetected (RoundAlreadySigned)
        assert "RoundAlreadySigned: this owner signed receipt" in owner_log(fed, name)
        assert signed_by(fed, name, ROUND) in colluder.released.values()
    status = colluder.wait(fed.node_port, "the rolled-back node", lambda s: s.rounds_completed == ROUND - 1)
    assert status.contributions == 0  # the re-opened round 3 has nobody left to take an update from
    assert len(colluder.released) == 1  # one aggregate of round 3, ever


def test_a_round_nobody_released_is_rerun_only_by_its_non_signers_and_the_signer_holds_the_proof(
    federation: FaultFederation, proxies: dict[str, FaultyProxy]
) -> None:
    fed, colluder = federation, Colluder(federation)
    start(fed)
    snapshot_round_2(fed, fed.root / "host-copy")
    seal_round_3_with_a_and_b_cut(fed, proxies, colluder)
    sealed = signed_by(fed, C, ROUND)
    assert sealed is not None  # C recorded R durably and signed it; A and B never saw it
    assert fed.node is not None

    fed.sigkill(fed.node)  # R (A,B,C) was never released; the operator re-runs round 3 without C
    shutil.rmtree(fed.state)
    shutil.copytree(fed.root / "host-copy", fed.state)
    proxies[C].block()
    fed.start_node()
    proxies[A].unblock()
    proxies[B].unblock()

    colluder.wait(fed.node_port, "round 3 re-run and released", lambda s: s.rounds_completed >= ROUND)
    assert len(colluder.released) == 1
    (rerun,) = colluder.released.values()
    assert rerun.receipt.contributions == 2 and rerun.sha256 != sealed.sha256  # agg(A,B): the only release
    proxies[C].unblock()
    assert fed.wait_exit(fed.owners[C]) == 3, fed.log_tail()  # C refuses the chain that replaced its round
    assert "ConflictingReceipts: round 3: the node signed two receipts" in owner_log(fed, C)
    with pytest.raises(ConflictingReceipts):  # anyone holding C's state and the released chain sees the fork
        find_conflicting_receipts([sealed, rerun], colluder.node_key_pem)


def test_two_enclave_copies_from_one_sealed_state_release_at_most_one_aggregate_of_a_round(
    federation: FaultFederation, proxies: dict[str, FaultyProxy]
) -> None:
    fed, colluder = federation, Colluder(federation)
    start(fed)
    fork_state, fork_port = fed.root / "fork-state", free_port()
    snapshot_round_2(fed, fork_state)
    seal_round_3_with_a_and_b_cut(fed, proxies, colluder)  # copy 1 holds R = (A,B,C), signed by C only

    fed.start_node(state=fork_state, port=fork_port)  # copy 2, same sealed state and key, on another port
    for name in (A, B):
        proxies[name].retarget(fork_port)
        proxies[name].unblock()
    colluder.wait(fork_port, "copy 2 to release its round 3", lambda s: s.rounds_completed >= ROUND)
    for name in (A, B):  # the operator now brings A and B to copy 1 to get R signed too
        proxies[name].retarget(fed.node_port)

    for name in (A, B):
        assert fed.wait_exit(fed.owners[name]) == 3, fed.log_tail()
        assert "ConflictingReceipts: round 3: the node signed two receipts" in owner_log(fed, name)
    status = colluder.look(fed.node_port)
    assert status is not None and status.rounds_completed == ROUND - 1 and status.phase.value == "signing"
    assert len(colluder.released) == 1  # copy 2's agg(A,B); copy 1 never releases agg(A,B,C)
    (released,) = colluder.released.values()
    held_by_c = signed_by(fed, C, ROUND)
    assert held_by_c is not None and released.receipt.contributions == 2
    with pytest.raises(ConflictingReceipts):  # the fork is on record: C's receipt and the released one
        find_conflicting_receipts([held_by_c, released], colluder.node_key_pem)

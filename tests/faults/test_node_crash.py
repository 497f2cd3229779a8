"""SIGKILL the node (from outside, and at injected crash points) and restart it: same weights, one chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fault_harness import FaultFederation
from fault_task import OWNERS, ROUNDS

from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.crash_points import POINTS
from enclavefl.owner.model_owner import FinalModel
from enclavefl.transport.api import JobState, NodeStatus

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(150)]


def finish(fed: FaultFederation) -> FinalModel:
    """Wait for the job to finish and every owner to exit cleanly; the model owner downloads (chain verified)."""
    fed.wait_for("the job to finish", lambda s: s.job_state is JobState.FINISHED, timeout=90)
    for name in OWNERS:
        assert fed.wait_exit(fed.owners[name]) == 0, fed.log_tail()
    return fed.session().download_final()


def assert_same_weights(actual: ModelWeights, expected: ModelWeights) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        got, want = np.asarray(actual[name], np.float64), np.asarray(expected[name], np.float64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def assert_every_update_counted_once(receipts: tuple[RoundReceipt, ...]) -> None:
    assert [r.round for r in receipts] == list(range(1, ROUNDS + 1))
    for r in receipts:
        assert r.contributions == len(OWNERS) == len(set(r.update_commitments)), r
    every = [h for r in receipts for h in r.update_commitments]
    assert len(every) == len(set(every))  # no update hash appears in two rounds either


def assert_nothing_unsealed_on_disk(state: Path, final: ModelWeights) -> None:
    needles = (b"EFLCKPT", b"enclavefl/receipt/v2", b"__metadata__", final[sorted(final)[0]].tobytes()[:64])
    for path in state.iterdir():
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{path.name} holds plaintext {needle[:20]!r}"


def round_open_with_a_contribution(round_index: int) -> object:
    def check(s: NodeStatus) -> bool:
        return s.round == round_index and s.phase.value == "open" and s.contributions >= 1

    return check


def test_an_undisturbed_run_of_processes_equals_the_in_process_run(
    fault_federation: FaultFederation, undisturbed_final_model: ModelWeights
) -> None:
    fed = fault_federation
    fed.start_all()

    final = finish(fed)

    assert_same_weights(final.weights, undisturbed_final_model)
    assert_every_update_counted_once(final.receipts)


def test_node_sigkilled_in_round_5_of_10_resumes_to_the_same_weights_and_one_chain(
    fault_federation: FaultFederation, undisturbed_final_model: ModelWeights
) -> None:
    fed = fault_federation
    fed.start_node()
    first, *others = OWNERS
    fed.start_owner(first)
    for name in others:  # they upload round 5 late, so it stays open with one update folded while we kill the node
        fed.start_owner(name, hold_round=5, hold_seconds=3.0)
    fed.wait_for("round 5 to have an update folded", round_open_with_a_contribution(5))  # type: ignore[arg-type]
    assert fed.node is not None

    fed.sigkill(fed.node)  # mid-aggregation: one update folded in the enclave, the round not closed
    fed.start_node()
    final = finish(fed)

    assert_same_weights(final.weights, undisturbed_final_model)
    assert_every_update_counted_once(final.receipts)  # the chain verified under one node key, rounds 1..10
    assert_nothing_unsealed_on_disk(fed.state, final.weights)
    reports = [json.loads(p.read_text()) for p in fed.root.glob("*-report-*.json")]
    assert sum(r["reconnects"] for r in reports) >= len(OWNERS)  # every owner re-attested the restarted node
    # round 5 uploaded again: the first owner's upload was folded by the killed node (its answer, which waits for
    # the seal, was lost with it), and the restarted node redid the round from its checkpoint
    assert sum((r["contributed"] + r["interrupted"]).count(5) for r in reports) >= len(OWNERS) + 1
    assert final.receipts[4].contributions == len(OWNERS)  # ... and counted once


@pytest.mark.parametrize("point", POINTS)
def test_node_killed_at_a_crash_point_of_round_5_resumes_to_the_same_weights(
    fault_federation: FaultFederation, undisturbed_final_model: ModelWeights, point: str
) -> None:
    fed = fault_federation
    node = fed.start_node(fault=f"{point}@5")
    for name in OWNERS:
        fed.start_owner(name)

    assert fed.wait_exit(node) == -9  # the node SIGKILLed itself at the crash point
    leftovers = sorted(p.name for p in fed.state.iterdir())
    fed.start_node()
    final = finish(fed)

    if point == "round-sealed":  # sealed, its receipt not yet signed: the restarted node asks for the signatures
        assert "checkpoint-00000005.sealed" in leftovers and "acks-00000005.json" not in leftovers
    else:
        assert "checkpoint-00000005.sealed" not in leftovers  # round 5 was never sealed, so never released
    if point == "checkpoint-log-appended":  # round 5's record is in the log, past what round 4's checkpoint seals
        assert "receipts.log" in leftovers
    if point == "checkpoint-before-rename":
        assert any(name.startswith(".checkpoint-00000005.sealed.") for name in leftovers)
        assert not any(p.name.endswith(".tmp") for p in fed.state.iterdir())  # removed at restart
    assert_same_weights(final.weights, undisturbed_final_model)
    assert_every_update_counted_once(final.receipts)
    assert_nothing_unsealed_on_disk(fed.state, final.weights)

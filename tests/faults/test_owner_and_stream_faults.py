"""Data owners killed at random points, delayed and truncated streams: the job ends with the same weights."""

from __future__ import annotations

import random
from functools import partial

import pytest
from fault_harness import FaultFederation
from fault_proxy import FaultyProxy
from fault_task import OWNERS
from test_node_crash import assert_every_update_counted_once, assert_same_weights, finish

from enclavefl.core.weights import ModelWeights
from enclavefl.transport.api import JobState, NodeStatus

GATE = 9  # the owners upload round 9 only once every planned kill (rounds 2..8) happened

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(150)]


def open_from(round_index: int, status: NodeStatus) -> bool:
    return status.round >= round_index and status.phase.value == "open"


def opened(round_index: int, status: NodeStatus) -> bool:
    """Round `round_index` has opened (it may be sealed or released by now: rounds here take ~75 ms)."""
    return status.round >= round_index


def test_data_owners_sigkilled_at_random_points_and_restarted_change_nothing(
    fault_federation: FaultFederation, undisturbed_final_model: ModelWeights
) -> None:
    fed = fault_federation
    rng = random.Random()  # not security code: which round and how long after its opening each owner dies
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    plan = {name: (rng.randint(2, 8), rng.uniform(0.0, 0.15)) for name in OWNERS}
    print(f"random seed {seed}: (round, seconds after it opened) per owner {plan}")  # shown when the test fails
    # Every owner (and its restart) waits before uploading round GATE until the kills are done: a test process
    # that sees a round late (a loaded machine misses 20 ms open phases) kills in a later round, never after the
    # job ended, so no owner dies with no work left and no wait is for a round that already passed.
    gate = fed.root / "kills-done"
    fed.start_node()
    for name in OWNERS:
        fed.start_owner(name, gate=(GATE, gate))

    for name, (round_index, after) in sorted(plan.items(), key=lambda item: item[1]):
        fed.wait_for(f"round {round_index}", partial(opened, round_index))
        fed.sigkill_after(fed.owners[name], after)
        fed.start_owner(name, gate=(GATE, gate))  # same --state dir: it remembers the receipts it verified
    status = fed.status()
    assert status is not None and status.job_state is JobState.RUNNING  # every kill left its owner work to do
    gate.touch()
    final = finish(fed)

    assert_same_weights(final.weights, undisturbed_final_model)
    assert_every_update_counted_once(final.receipts)


def test_delayed_and_truncated_streams_end_with_the_same_weights(
    fault_federation: FaultFederation, undisturbed_final_model: ModelWeights
) -> None:
    fed = fault_federation
    proxy = FaultyProxy(fed.node_port, delay=0.002)
    fed.owner_address = f"127.0.0.1:{proxy.port}"
    try:
        fed.start_node()
        for name in OWNERS:  # round 3 waits for them: the cut is armed before its uploads start
            fed.start_owner(name, hold_round=3, hold_seconds=1.0)
        fed.wait_for("round 3", partial(open_from, 3))
        proxy.arm_cut(after_bytes=4096)  # the next connection to carry 4 KiB more towards the node is cut
        final = finish(fed)
    finally:
        proxy.close()

    assert proxy.cuts == 1
    assert_same_weights(final.weights, undisturbed_final_model)
    assert_every_update_counted_once(final.receipts)

"""Issue 22 item 3: one enrolled party holding many calls must not starve everyone else.

The attack: the model owner (any enrolled role will do) keeps 160 Status long polls (up to 5 s each) in flight
over one authenticated connection, while the honest owners alice and bob run a one-round job. Held
calls are counted by no per-party limit and the server has 32 threads, so on the code of issue 22 the honest
parties' calls queue behind the flooder's (DEADLINE_EXCEEDED after 10 s). The defence is in place when the
honest owners finish within twice their unflooded time and the flooder's extra calls are refused with NodeBusy
naming the limit.

The fix (issue 25): the server is asynchronous, so held calls hold no thread, and every held call counts against
its party's `max_held_per_peer` and the node's `max_held` (transport/limits.py). The test times two whole jobs
run back to back in this process (a ratio against a baseline measured in the same test, not an absolute time).
On the asynchronous server the honest job takes tens of milliseconds, so the flood is measured once the
flooder's refused polls are past their client's first quick retries (50 ms, 100 ms, ...: a burst of its 160
threads in this very process, competing for the GIL with the node and the honest owners, which a flooder on
another machine would not); it then keeps 8 polls held and asks again about once a second per thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from node_harness import Workspace, numpy_owner, workspace

from enclavefl.core.jobfile import read_initial_model
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.transport.grpc_client import NodeClient

pytestmark = pytest.mark.filterwarnings("ignore")
__all__ = ["workspace"]
FLOOD = 160


def one_round(ws: Workspace) -> Workspace:
    return ws.with_job(rounds=1)


def recording(target: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    return run


def honest_job_seconds(
    ws: Workspace, node: AggregatorNode, *, give_up_after: float = 120.0
) -> tuple[float, list[BaseException]]:
    """Alice and bob run the whole job (the node starts with the initial model); how long until both are done."""
    errors: list[BaseException] = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=recording(numpy_owner(ws, node.address, n, v), errors), daemon=True)
        for n, v in (("alice", 1.0), ("bob", 3.0))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + give_up_after - time.monotonic()))
    if any(t.is_alive() for t in threads):
        errors.append(TimeoutError(f"an honest owner did not finish within {give_up_after:.0f} s"))
    return time.monotonic() - started, errors


def flood(ws: Workspace, node: AggregatorNode, stop: threading.Event, errors: list[BaseException]) -> NodeClient:
    """The model owner: one attested connection, FLOOD threads each holding a Status long poll, again and again."""
    flooder = ModelOwnerSession.connect(
        node.address, job=ws.job, policy=ws.policy, credentials=ws.credentials("model-owner")
    ).node

    def poll() -> None:
        seen = flooder.client.node_status()
        while not stop.is_set():
            try:  # the latest status as `seen`: each poll is held until the node changes (up to 5 s)
                seen = flooder.client.node_status(seen=seen, wait_seconds=5.0)
            except Exception as exc:
                errors.append(exc)
                time.sleep(0.1)

    for _ in range(FLOOD):
        threading.Thread(target=poll, daemon=True).start()
    return flooder.client


@pytest.mark.slow
def test_one_partys_held_calls_do_not_starve_the_honest_owners(workspace: Workspace) -> None:
    ws = one_round(workspace)
    quiet = ws.node(initial_model=read_initial_model(ws.model_file))
    try:
        baseline, quiet_errors = honest_job_seconds(ws, quiet)
    finally:
        quiet.stop(0)
    assert quiet_errors == []

    ws = ws.with_job(name="cli-test-flooded")  # a fresh job (another digest) on a fresh node
    busy = ws.node(initial_model=read_initial_model(ws.model_file))
    stop, refusals = threading.Event(), []
    try:
        flooder = flood(ws, busy, stop, refusals)
        time.sleep(4.0)  # the polls are in flight, the refused ones past their first quick retries
        flooded, flooded_errors = honest_job_seconds(ws, busy, give_up_after=2 * baseline + 10)
    finally:
        stop.set()
        busy.stop(0)

    assert flooded_errors == [], f"honest owners failed under the flood: {flooded_errors[:3]}"
    assert flooded <= 2 * baseline, f"honest job took {flooded / baseline:.1f}x its unflooded time under the flood"
    # the flooder's extra polls were refused with NodeBusy naming the limit (its client waits them out and asks
    # again, so they reach it as waits, or as NodeBusy after a minute of them)
    assert busy.server is not None and busy.server.gate.refused.get("max_held_per_peer", 0) > 0
    assert flooder.busy_refusals > 0 or any(type(e).__name__ == "NodeBusy" for e in refusals)
    assert busy.server.gate.peak_held["model-owner"] <= busy.server.gate.limits.max_held_per_peer

"""Issue 22 item 3: one enrolled party holding many calls must not starve everyone else.

The attack: the model owner (any enrolled role will do) keeps 160 Status long polls (up to 5 s each) in flight
over one authenticated connection, while the honest owners alice and bob run a one-round job. Held
calls are counted by no per-party limit and the server has 32 threads, so on the code of issue 22 the honest
parties' calls queue behind the flooder's (DEADLINE_EXCEEDED after 10 s). The defence is in place when the
honest owners finish within twice their unflooded time and the flooder's extra calls are refused with NodeBusy
naming the limit.

The fix (issue 25): the server is asynchronous, so held calls hold no thread, and every held call counts against
its party's `max_held_per_peer` and the node's `max_held` (transport/limits.py). The test times two whole jobs
run back to back (a ratio against a baseline measured in the same test, not an absolute time). The flooder runs
in a process of its own (held_calls_flooder.py: real TLS, the model owner's enrolled key), as it would on another
machine, so its threads do not compete for this process's GIL with the node and the honest owners; the flooded
job is timed from its start, as soon as the node holds as many of the flooder's polls as it allows one party
(the refused ones in their client's first quick retries: 50 ms, 100 ms, ...). Each honest owner trains for a
second per round (a sleep), as a real owner does: with an instantaneous 50 ms job the ratio measured the
machine's load (2 shared cores), not starvation, which shows as NodeBusy or a 10 s+ stall.
Without the per-party count the ratio holds on the asynchronous server (held calls hold no thread); the test then
fails on the refusal and peak checks (checked by disabling the `max_held_per_peer` refusal in limits.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from node_harness import Workspace, numpy_owner, workspace

from enclavefl.core.jobfile import read_initial_model
from enclavefl.enclave.node import AggregatorNode

pytestmark = pytest.mark.filterwarnings("ignore")
__all__ = ["workspace"]
FLOOD = 160
TRAIN_SECONDS = 1.0  # each honest owner's local training per round (a sleep: no CPU)
FLOODER = Path(__file__).with_name("held_calls_flooder.py")


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
        threading.Thread(
            target=recording(numpy_owner(ws, node.address, n, v, train_seconds=TRAIN_SECONDS), errors), daemon=True
        )
        for n, v in (("alice", 1.0), ("bob", 3.0))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + give_up_after - time.monotonic()))
    if any(t.is_alive() for t in threads):
        errors.append(TimeoutError(f"an honest owner did not finish within {give_up_after:.0f} s"))
    return time.monotonic() - started, errors


def start_flood(ws: Workspace, node: AggregatorNode) -> subprocess.Popen[str]:
    """The model owner in its own process: one attested connection, FLOOD threads each holding a Status long poll,
    again and again; returns once the node holds as many of its polls as it allows one party (the rest queue up)."""
    key, cert = ws.keys["model-owner"]
    argv = [sys.executable, str(FLOODER), node.address, str(ws.job_file), str(ws.policy_file), str(key), str(cert)]
    flooder = subprocess.Popen([*argv, str(FLOOD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert flooder.stdout is not None and flooder.stdout.readline() == "attested\n", "the flooder did not attest"
    gate = node.server.gate if node.server is not None else None
    assert gate is not None
    deadline = time.monotonic() + 60.0
    while gate.peak_held.get("model-owner", 0) < gate.limits.max_held_per_peer:
        assert flooder.poll() is None and time.monotonic() < deadline, "the flood never reached the node's limit"
        time.sleep(0.01)
    return flooder


def stop_flood(flooder: subprocess.Popen[str]) -> dict[str, object]:
    """Closes the flooder's input; what it reports: NodeBusy answers waited out, its polls' error types."""
    out, _ = flooder.communicate(timeout=30)
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


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
    flooder = start_flood(ws, busy)
    try:
        flooded, flooded_errors = honest_job_seconds(ws, busy, give_up_after=2 * baseline + 10)
        flooding = stop_flood(flooder)
    finally:
        flooder.kill()
        busy.stop(0)

    assert flooded_errors == [], f"honest owners failed under the flood: {flooded_errors[:3]}"
    assert flooded <= 2 * baseline, f"honest job took {flooded / baseline:.1f}x its unflooded time under the flood"
    # the flooder's extra polls were refused with NodeBusy naming the limit (its client waits them out and asks
    # again, so they reach it as waits, or as NodeBusy after a minute of them)
    assert busy.server is not None and busy.server.gate.refused.get("max_held_per_peer", 0) > 0
    assert flooding["busy_refusals"] or "NodeBusy" in flooding["errors"]  # type: ignore[operator]
    assert busy.server.gate.peak_held["model-owner"] <= busy.server.gate.limits.max_held_per_peer

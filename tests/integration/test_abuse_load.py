"""Issue 12 part 3: 100 enrolled owners complete a round while an enrolled abuser floods the node.

Real gRPC over real TLS on loopback; the node runs in process, every owner is a thread with its own channel (see
abuse_scenario.py). Bounded: one round, at most MAX_ABUSIVE_STREAMS stream attempts and MAX_ATTEST_FLOOD Attest
calls per flooding connection, a 150 s deadline. Before the limits, 32 held Watch streams took every RPC thread
and the other owners' calls hit their deadlines.
"""

from __future__ import annotations

import pytest
from abuse_scenario import run_abuse_scenario

from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(300)]
OWNERS = 100


def test_every_honest_owner_completes_its_round_while_an_enrolled_client_floods_the_node(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    tee, policy = sim_enclave
    run = run_abuse_scenario(tee=tee, policy=policy, owners=OWNERS, abuser=True)

    assert run.failures == {}
    assert len(run.completed) == OWNERS  # each saw the released round list its own update's commitment
    assert run.contributions == OWNERS + 1  # the abuser's own update counts: it is enrolled
    assert run.counts.other_errors == []
    # the abuser got refusals, and held no more streams than its limits allow
    assert run.counts.streams_refused > 0
    assert run.abuser_peak_watchers == 2  # max_watchers_per_peer: it got what it may have, no more
    assert run.abuser_peak_streams <= 4  # max_streams_per_peer (watchers, downloads and its upload together)
    assert run.counts.attest_refused > 0
    assert run.node_refused.get("max_watchers_per_peer", 0) > 0
    assert run.node_refused.get("attest_per_second", 0) > 0

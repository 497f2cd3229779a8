"""Two of five data-owner processes die (SIGKILL) mid-job; the rounds go on with the three survivors (K = 3)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from federation_setup import STALLING_TASK, TASK, owner_names, tiny_federation

from enclavefl.core.messages import RoundSummary
from enclavefl.demos.process_federation import ProcessGroup, run_federation

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(240)]
ROUNDS = 3
DEADLINE = 5.0  # rounds after the kill close at the deadline with the survivors
VICTIMS = ("owner-03", "owner-04")


def test_rounds_complete_with_the_survivors_after_two_owners_are_killed(tmp_path: Path) -> None:
    # prepare
    files = tiny_federation(
        tmp_path / "fed",
        owners=5,
        rounds=ROUNDS,
        min_contributions=3,
        deadline=DEADLINE,
        platform_dir=tmp_path / "platform",
    )

    def kill_after_round_one(summary: RoundSummary, group: ProcessGroup) -> None:
        if summary.round == 1:  # round 2 is open now: the victims are training it (they stall there)
            for name in VICTIMS:
                group.children[name].kill(signal.SIGKILL)

    # act: a victim that uploaded round 2 before its death would be a contributor the round must wait for (its
    # signature), so the victims stall in round 2's training; rounds take milliseconds, the kill could be late
    run = run_federation(
        files,
        task=TASK,
        owner_tasks=dict.fromkeys(VICTIMS, STALLING_TASK),
        light_owners=True,
        on_round=kill_after_round_one,
        timeout=200.0,
    )

    # assert: every round released, the last one by exactly the three survivors
    contributions = [s.contributions for s in run.summaries]
    assert len(contributions) == ROUNDS
    assert contributions[0] == 5  # the model is submitted once every owner attested (run_federation waits)
    assert contributions[-1] == 3
    assert min(contributions) >= 3
    assert len(run.final.receipts) == ROUNDS
    survivors = [n for n in owner_names(5) if n not in VICTIMS]
    assert {n: run.exit_codes[n] for n in survivors} == dict.fromkeys(survivors, 0)
    assert {n: run.exit_codes[n] for n in VICTIMS} == dict.fromkeys(VICTIMS, -signal.SIGKILL)
    assert run.exit_codes["node"] == 0

"""Twenty data owners, each its own OS process, complete a job with one node."""

from __future__ import annotations

from pathlib import Path

import pytest
from federation_setup import TASK, owner_names, tiny_federation

from enclavefl.demos.process_federation import run_federation

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(300)]
OWNERS = 20
ROUNDS = 2


def test_twenty_owner_processes_complete_every_round_with_every_update(tmp_path: Path) -> None:
    # prepare: every owner must contribute (K = 20); the deadline is only a safety net
    files = tiny_federation(
        tmp_path / "fed",
        owners=OWNERS,
        rounds=ROUNDS,
        min_contributions=OWNERS,
        deadline=150.0,
        platform_dir=tmp_path / "platform",
    )

    # act: owners run the argparse entry (no CLI libraries): 20 torch imports on 2 cores
    run = run_federation(files, task=TASK, light_owners=True, timeout=240.0)

    # assert
    assert [s.contributions for s in run.summaries] == [OWNERS] * ROUNDS
    assert [len(r.update_commitments) for r in run.final.receipts] == [OWNERS] * ROUNDS
    assert {name: run.exit_codes[name] for name in owner_names(OWNERS)} == dict.fromkeys(owner_names(OWNERS), 0)
    assert run.exit_codes["node"] == 0

"""Masked mode over real gRPC/TLS between processes: an owner killed after sharing its seeds; the round releases."""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from federation_setup import owner_names

from enclavefl.core.job import DataOwnerSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.demos.process_federation import ProcessGroup, run_federation, write_federation_files
from enclavefl.demos.seed import initial_model, seed_job

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(280)]
TASK = f"{Path(__file__).with_name('stalling_task.py')}:TASK"
VICTIM = "owner-04"
OWNERS = 5
DEADLINE = 40.0  # phases close by 20 s (keys), 25 s (shares), 35 s (uploads: the victim's round closes here), 40 s


def test_a_masked_round_releases_the_survivors_sum_after_an_owner_dies_after_sharing_its_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prepare: the victim stalls in its second round's training, i.e. after its seeds were shared
    marker = tmp_path / "stalled"
    monkeypatch.setenv("ENCLAVEFL_TEST_STALL_OWNER", VICTIM)
    monkeypatch.setenv("ENCLAVEFL_TEST_STALL_CALL", "2")
    monkeypatch.setenv("ENCLAVEFL_TEST_STALL_MARKER", str(marker))
    rng = np.random.default_rng(7)  # test data only
    datasets = {
        name: {"x": rng.random((4, 2), dtype=np.float32), "y": rng.random((4, 1), dtype=np.float32)}
        for name in owner_names(OWNERS)
    }
    initial = initial_model(0)
    spec = SecureAggregationSpec(degree=2, threshold=2, scale=float(1 << 20), modulus_bits=64, clip_norm=100.0)
    job = dataclasses.replace(
        seed_job(initial, rounds=2),
        name="masked-processes",
        min_contributions=3,
        round_deadline_seconds=DEADLINE,
        data_owners=tuple(DataOwnerSpec(name=n) for n in datasets),
        secure_aggregation=spec,
    )
    files = write_federation_files(
        tmp_path / "fed", job=job, initial=initial, datasets=datasets, platform_dir=tmp_path / "platform"
    )

    def kill_the_victim_once_it_stalls(summary: RoundSummary, group: ProcessGroup) -> None:
        if summary.round != 1:
            return
        waited = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < waited:
            time.sleep(0.05)
        assert marker.exists(), "the victim never reached its second round's training"
        group.children[VICTIM].kill(signal.SIGKILL)

    # act
    run = run_federation(files, task=TASK, light_owners=True, on_round=kill_the_victim_once_it_stalls, timeout=240)

    # assert: both rounds released; round 2 by the four survivors, unmasked with the victim's seeds recovered
    contributions = [s.contributions for s in run.summaries]
    assert len(contributions) == 2
    assert contributions[1] == OWNERS - 1
    assert len(run.final.receipts) == 2
    assert run.exit_codes[VICTIM] == -signal.SIGKILL
    assert run.exit_codes["node"] == 0
    survivors = [n for n in datasets if n != VICTIM]
    assert all(run.exit_codes[n] == 0 for n in survivors)

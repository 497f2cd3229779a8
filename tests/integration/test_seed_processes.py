"""The seed scenario as real OS processes (node, Bob, Alice via the CLI) ends where the in-process run ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.jobfile import load_job
from enclavefl.demos.seed import run_seed
from enclavefl.demos.seed_processes import run_seed_processes
from enclavefl.owner.model_owner_files import verify_receipts_file

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(240)]
ROUNDS = 10


def test_seed_over_processes_equals_the_in_process_run_and_its_receipts_verify(tmp_path: Path) -> None:
    # prepare: the in-process reference, same seed
    reference, _ = run_seed(seed=0, rounds=ROUNDS, platform_dir=tmp_path / "platform-ref")

    # act
    result = run_seed_processes(workdir=tmp_path / "fed", seed=0, rounds=ROUNDS)

    # assert
    run = result.run
    assert run.exit_codes == {"node": 0, "bob": 0, "alice": 0}
    assert [s.contributions for s in run.summaries] == [2] * ROUNDS
    assert list(run.final.weights) == list(reference.final_model)
    for name in reference.final_model:
        got, want = run.final.weights[name].astype(np.float64), reference.final_model[name].astype(np.float64)
        assert np.abs(got - want).max() <= 1e-6
    assert any("round 10 local losses" in line for line in run.output["alice"])
    # a third party holding job.toml, receipts.json and the model can check them again
    job = load_job(result.files.job)
    receipts = verify_receipts_file(
        result.files.directory / "receipts.json", job_digest=job.digest(), final=run.final.weights
    )
    assert [r.contributions for r in receipts] == [2] * ROUNDS

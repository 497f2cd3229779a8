"""The process orchestration fails loudly, naming the party and its output, instead of waiting forever."""

from __future__ import annotations

from pathlib import Path

import pytest
from federation_setup import tiny_federation

from enclavefl.demos.process_federation import ChildProcessFailed, run_federation

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(120)]


def test_a_data_owner_that_cannot_start_stops_the_run_with_its_error(tmp_path: Path) -> None:
    # prepare: a task that does not exist; the round would otherwise wait for its 60 s deadline
    files = tiny_federation(
        tmp_path / "fed", owners=1, rounds=1, min_contributions=1, deadline=60.0, platform_dir=tmp_path / "platform"
    )

    # act / assert
    with pytest.raises(ChildProcessFailed, match=r"owner-00 exited with status 2") as failure:
        run_federation(files, task="no_such_module:TASK", light_owners=True, timeout=90.0)
    assert "cannot import no_such_module" in str(failure.value)

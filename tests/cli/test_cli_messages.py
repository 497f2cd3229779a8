"""Messages a newcomer reads: who printed which loss, help text that survives rich markup, whole hashes."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from enclavefl.cli.main import app

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()


def test_the_one_process_demo_labels_bobs_and_alices_losses_and_prints_whole_digests() -> None:
    result = runner.invoke(app, ["demo", "--rounds", "1"], terminal_width=80)

    assert result.exit_code == 0, result.output
    assert "[bob] round 1 local losses:" in result.output
    assert "[alice] round 1 local losses:" in result.output
    assert re.search(r"^final model weights digest: [0-9a-f]{64}$", result.output, flags=re.M)


def test_job_init_help_shows_the_table_names_and_points_to_existing_docs() -> None:
    result = runner.invoke(app, ["job", "init", "--help"], terminal_width=200)

    said = " ".join(result.output.split())
    assert "edit its [strategy] and [dp] tables: docs/robustness.md and docs/privacy.md" in said

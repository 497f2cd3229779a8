"""`enclavefl enclave tcb` prints the enclave's modules and distributions, and the form the TCB test pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from enclavefl.cli.main import app

PINNED = tomllib.loads((Path(__file__).parents[1] / "enclave" / "pinned_tcb.toml").read_text())


def test_tcb_prints_every_pinned_module_and_distribution_with_totals() -> None:
    result = CliRunner().invoke(app, ["enclave", "tcb"])

    assert result.exit_code == 0, result.output
    for name in [*PINNED["modules"], *PINNED["distributions"]]:
        assert name in result.output
    assert f"{len(PINNED['modules'])} modules" in result.output
    assert f"{len(PINNED['distributions'])} distributions" in result.output


def test_tcb_pinned_prints_the_toml_the_test_pins() -> None:
    result = CliRunner().invoke(app, ["enclave", "tcb", "--pinned"])

    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    assert printed["modules"] == PINNED["modules"]
    assert printed["distributions"] == PINNED["distributions"]

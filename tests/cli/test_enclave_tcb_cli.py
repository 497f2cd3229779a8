"""`enclavefl enclave tcb` prints the enclave's two closures (a plain job's, the release's) and the form the TCB
test pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from enclavefl.cli.main import app

PINS = tomllib.loads((Path(__file__).parents[1] / "enclave" / "pinned_tcb.toml").read_text())


def test_tcb_prints_both_closures_with_every_pinned_module_and_distribution_and_totals() -> None:
    result = CliRunner().invoke(app, ["enclave", "tcb"])

    assert result.exit_code == 0, result.output
    assert "a plain job" in result.output and "what the release trusts in full" in result.output
    for closure in ("plain", "release"):
        pinned = PINS[closure]
        for name in [*pinned["modules"], *pinned["distributions"]]:
            assert name in result.output
        assert f"{len(pinned['modules'])} modules" in result.output
        assert f"{len(pinned['distributions'])} distributions" in result.output
    assert result.output.index("a plain job") < result.output.index("what the release trusts in full")


def test_tcb_pinned_prints_the_toml_the_test_pins() -> None:
    result = CliRunner().invoke(app, ["enclave", "tcb", "--pinned"])

    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    for closure in ("plain", "release"):
        assert printed[closure]["modules"] == PINS[closure]["modules"]
        assert printed[closure]["distributions"] == PINS[closure]["distributions"]

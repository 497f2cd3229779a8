"""`enclavefl demo --masked` prints the same final loss as the unmasked demo (within the fixed-point bound)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from enclavefl.cli.main import app

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
LOSS = re.compile(r"final loss \(sum of squared errors\): ([0-9.]+)")


def test_masked_demo_prints_the_unmasked_final_loss() -> None:
    plain = runner.invoke(app, ["demo", "-q"], terminal_width=120)
    masked = runner.invoke(app, ["demo", "-q", "--masked"], terminal_width=120)

    assert plain.exit_code == 0 and masked.exit_code == 0, masked.output
    assert "masked mode: the enclave received only masked updates" in masked.output
    plain_loss, masked_loss = (float(LOSS.search(r.output).group(1)) for r in (plain, masked))  # type: ignore[union-attr]
    assert abs(plain_loss - masked_loss) <= 1e-4


@pytest.mark.slow
def test_masked_demo_as_processes_prints_the_same_final_loss() -> None:
    masked = runner.invoke(app, ["demo", "-q", "--masked", "--processes", "--rounds", "3"], terminal_width=120)
    plain = runner.invoke(app, ["demo", "-q", "--rounds", "3"], terminal_width=120)

    assert masked.exit_code == 0, masked.output
    assert "masked mode: the enclave received only masked updates" in masked.output
    plain_loss, masked_loss = (float(LOSS.search(r.output).group(1)) for r in (plain, masked))  # type: ignore[union-attr]
    assert abs(plain_loss - masked_loss) <= 1e-4

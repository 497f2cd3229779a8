"""`enclavefl simulate`: virtual owners from a task file and a data function, in process (Ray: tests/sim)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.codec import decode_weights
from enclavefl.core.exit_codes import ExitCode

HELPERS = Path(__file__).resolve().parents[1] / "sim" / "equal_runs.py"
runner = CliRunner()


def test_simulate_runs_virtual_owners_with_a_cohort_and_writes_the_model(tmp_path: Path) -> None:
    out = tmp_path / "final.safetensors"
    result = runner.invoke(
        app,
        ["simulate", "--task", f"{HELPERS}:TASK", "--data", f"{HELPERS}:owner_data", "--owners", "5",
         "--clients-per-round", "2", "--rounds", "2", "--local-steps", "2", "--out", str(out)],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "INSECURE SIMULATION" in result.output
    assert "round 2/2 released: 2 contribution(s)" in result.output
    digest = result.output.split("final model ", 1)[1].split()[0]
    assert decode_weights(out.read_bytes()).sha256().hex() == digest


def test_a_missing_data_function_is_a_one_line_config_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--task", f"{HELPERS}:TASK", "--data", f"{HELPERS}:no_such_function"])

    assert result.exit_code == ExitCode.CONFIG
    assert "has no function 'no_such_function'" in result.output


def test_an_unknown_backend_is_a_config_error() -> None:
    result = runner.invoke(
        app, ["simulate", "--task", f"{HELPERS}:TASK", "--data", f"{HELPERS}:owner_data", "--backend", "spark"]
    )

    assert result.exit_code == ExitCode.CONFIG
    assert "backend must be one of inprocess, ray" in result.output

"""`enclavefl job plot`: a PNG of the curves from the model owner's round records, and one line when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.owner.metrics_history import RoundRecord

runner = CliRunner()


def records(path: Path) -> Path:
    rows = [
        RoundRecord(
            round=r,
            contributions=2 + r % 2,
            global_model_sha256="00" * 32,
            train={"train_loss": 1.0 / r},
            central={"loss": 1.2 / r, "accuracy": 0.5 + 0.1 * r},
        )
        for r in (1, 2, 3)
    ]
    path.write_text("".join(row.to_json() + "\n" for row in rows))
    return path


def test_plot_draws_a_panel_for_losses_one_for_metrics_and_one_for_contributions(tmp_path: Path) -> None:
    image = pytest.importorskip("matplotlib.image", reason="needs matplotlib (the examples extra)")
    out = tmp_path / "curves.png"

    result = runner.invoke(app, ["job", "plot", str(records(tmp_path / "rounds.jsonl")), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}: 3 rounds, 3 series"
    pixels = image.imread(str(out))
    assert pixels.shape[1] == pytest.approx(3 * 5.2 * 110, abs=2)  # three panels side by side
    assert (pixels[..., :3] < 0.9).any()  # something drawn


def test_plot_of_an_empty_or_missing_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for path, said in ((empty, "holds no round record yet"), (tmp_path / "none.jsonl", "cannot read it")):
        result = runner.invoke(app, ["job", "plot", str(path), "--out", str(tmp_path / "c.png")])
        assert result.exit_code == ExitCode.CONFIG
        assert len(result.output.strip().splitlines()) == 1 and said in result.output
    assert not (tmp_path / "c.png").exists()

"""The FedProx example: `--help` teaches, and a tiny run writes the figure's curves (PNG and JSON)."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fedprox" / "run.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fedprox_example_run", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_names_the_paper_and_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load().main(["--help"])

    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert exit_info.value.code == 0
    assert "Federated Optimization in Heterogeneous Networks" in out
    for option in ("--rounds", "--stragglers", "--mu", "--out"):
        assert option in out


def test_bad_options_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load().main(["--stragglers", "1.5"])

    assert exit_info.value.code == 2
    assert "--stragglers in [0, 1]" in capsys.readouterr().err


def test_a_tiny_run_writes_five_curves_and_the_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the example plots with matplotlib (enclavefl[examples])")
    warnings.simplefilter("ignore")

    curves = load().main(["--rounds", "2", "--epochs", "2", "--every", "1", "--out", str(tmp_path)])

    body = json.loads((tmp_path / "fedprox-synthetic.json").read_text())
    assert [c["label"] for c in body["curves"]] == [c.label for c in curves]
    assert len(curves) == 5 and all(len(c["train_loss"]) == 3 for c in body["curves"])
    assert (tmp_path / "fedprox-synthetic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "FedAvg, 90% stragglers: round 2/2" in out
    assert out.count("mean |change| per round") == 5  # the summary: one line per run

"""examples/seed-tutorial.ipynb runs top to bottom in a real Jupyter kernel (nbclient), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import enclavefl

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "seed-tutorial.ipynb"
SRC = Path(enclavefl.__file__).resolve().parents[1]


def test_the_seed_tutorial_notebook_runs_and_converges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(SRC))  # the kernel imports this checkout's enclavefl
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "round 10: 2 contributions" in outputs
    assert "[bob] round 1 local losses:" in outputs
    assert "receipt chain: 10 receipts" in outputs
    assert "curves drawn: train loss" in outputs  # the notebook draws its curves
    images = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 1
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

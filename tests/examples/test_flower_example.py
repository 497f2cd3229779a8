"""examples/flower: an unchanged Flower NumPyClient (scikit-learn digits) trained by a simulated federation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flower"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_flower_example_learns_the_digits() -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("flower_example_run", EXAMPLE / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        accuracies = module.main(rounds=3)
    finally:
        sys.path.remove(str(EXAMPLE))
    assert min(accuracies.values()) > 0.85  # 10 classes: chance is 0.1

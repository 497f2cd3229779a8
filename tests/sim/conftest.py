"""One local Ray for the session (2 CPUs), started only by the tests that need it; its workers import the helpers
of this directory (equal_runs.py) as the tests do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'enclavefl[ray]'")
    # the workers are started with this environment: they find equal_runs.py where the tests do
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()

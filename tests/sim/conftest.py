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
    # Ray's processes start with this environment (its workers then find equal_runs.py where the tests do); the
    # rest of the session gets the environment back
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), before or "") if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    yield ray
    ray.shutdown()

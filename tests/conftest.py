"""Shared test configuration: hardware tests run only with SGX=1, Gramine tests only with GRAMINE=1; simulation
warnings are expected."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

_SESSION_STATE_HOME: list[str] = []  # made by pytest_configure, removed by pytest_unconfigure
# marker -> (the variable that enables it, why it is off by default)
_OPT_IN = {
    "sgx": ("SGX", "needs SGX hardware and Gramine: run with SGX=1"),
    # Gramine installed (gramine-manifest, gramine-sgx-sign, gramine-direct on PATH), root, mmdebstrap and network
    # access to the Debian archive and PyPI: CI has none of them (docs/gramine.md, "Gramine tests")
    "gramine": ("GRAMINE", "builds releases with mmdebstrap and runs Gramine: run with GRAMINE=1"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, (variable, reason) in _OPT_IN.items():
        if os.environ.get(variable) == "1":
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def simulated_platform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated SGX platform for the whole session (creating one costs an RSA-3072 key)."""
    return tmp_path_factory.mktemp("simulated-platform")


@pytest.fixture
def sim_enclave(simulated_platform_dir: Path) -> tuple[TeeBackend, AttestationPolicy]:
    """An INSECURE simulated enclave and a policy accepting exactly it (the seed demo's pair)."""
    from enclavefl.api.simulation import simulated_enclave

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulated_enclave(simulated_platform_dir)


def pytest_configure(config: pytest.Config) -> None:
    """Owners keep durable state under $XDG_STATE_HOME by default: point it away from the user's home before
    anything runs (module-level environments, session fixtures and child processes inherit it)."""
    _SESSION_STATE_HOME.append(tempfile.mkdtemp(prefix="enclavefl-test-state-"))
    os.environ["XDG_STATE_HOME"] = _SESSION_STATE_HOME[-1]


def pytest_unconfigure(config: pytest.Config) -> None:
    for directory in _SESSION_STATE_HOME:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _owner_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Owners keep durable state by default under $XDG_STATE_HOME: each test gets its own, never the user's home."""
    state_home = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    return state_home

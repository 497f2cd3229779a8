"""Shared test configuration: hardware tests run only with SGX=1; simulation warnings are expected."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SGX") == "1":
        return
    skip = pytest.mark.skip(reason="needs SGX hardware and Gramine: run with SGX=1")
    for item in items:
        if item.get_closest_marker("sgx") is not None:
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

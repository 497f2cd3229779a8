"""Fixtures for the fault suite: every child process is SIGKILLed at teardown, whatever the test did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_harness import FaultFederation, federation_in
from fault_task import OWNERS, TASK, credential_paths, fault_policy, owner_data

from enclavefl.core.weights import ModelWeights
from enclavefl.sim.federation import run_federation
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials


@pytest.fixture
def fault_federation(
    tmp_path: Path, simulated_platform_dir: Path, sim_enclave: tuple[TeeBackend, AttestationPolicy]
) -> Iterator[FaultFederation]:
    # sim_enclave creates the simulated platform before any child process loads it
    yield from federation_in(tmp_path, simulated_platform_dir, fault_policy(simulated_platform_dir))


@pytest.fixture
def undisturbed_final_model(
    fault_federation: FaultFederation, sim_enclave: tuple[TeeBackend, AttestationPolicy]
) -> ModelWeights:
    """The same job run without faults, in process (the same node and owners; only the transport is in memory)."""
    tee, policy = sim_enclave
    credentials = fault_federation.credentials_dir
    keys = {n: OwnerCredentials.load(*credential_paths(credentials, n)).private_key for n in OWNERS}
    result = run_federation(
        job=fault_federation.job,
        task=TASK,
        datasets={n: owner_data(n) for n in OWNERS},
        initial_model=fault_federation.initial,
        tee=tee,
        policy=policy,
        signing_keys=keys,
    )
    return result.final_model

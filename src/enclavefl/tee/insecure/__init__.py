"""Everything here weakens a guarantee: simulated enclaves whose evidence proves nothing.

Every backend in this package emits `InsecureSimulationWarning` and logs at WARNING when it is
constructed. Verifiers recognise simulated evidence by its root CA, whose subject CN contains
`SIMULATION_CN_MARKER`, and accept it only when their policy explicitly allows simulation.
"""

from __future__ import annotations

from enclavefl.tee.insecure._collateral_builder import SIMULATED_TCB_STATUSES
from enclavefl.tee.insecure._pki import SIMULATION_CN_MARKER
from enclavefl.tee.insecure._warnings import InsecureSimulationWarning
from enclavefl.tee.insecure.measurement import (
    aggregator_code_files,
    measure_aggregator_code,
    mrsigner_of,
)
from enclavefl.tee.insecure.simulation import (
    InsecureSimulationBackend,
    SimulatedAttestationDevice,
    SimulatedEnclaveIdentity,
    SimulatedPlatform,
)

__all__ = [
    "SIMULATED_TCB_STATUSES",
    "SIMULATION_CN_MARKER",
    "InsecureSimulationBackend",
    "InsecureSimulationWarning",
    "SimulatedAttestationDevice",
    "SimulatedEnclaveIdentity",
    "SimulatedPlatform",
    "aggregator_code_files",
    "measure_aggregator_code",
    "mrsigner_of",
]

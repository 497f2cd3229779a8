"""The public API, one module per party; `enclavefl` re-exports every name (see its docstring and docs/api.md)."""

from enclavefl.api.attestation import (
    QuoteVerdict,
    evidence_from_quote,
    examine_evidence,
    examine_quote,
    verify_evidence,
    verify_quote,
    verify_receipts,
)
from enclavefl.api.data_owner import DataOwnerClient
from enclavefl.api.jobs import make_job
from enclavefl.api.model_owner import ModelOwnerClient
from enclavefl.api.simulation import SimulationHistory, simulate, simulated_enclave, simulation_job
from enclavefl.owner.preflight import load_task

__all__ = [
    "DataOwnerClient",
    "ModelOwnerClient",
    "QuoteVerdict",
    "SimulationHistory",
    "evidence_from_quote",
    "examine_evidence",
    "examine_quote",
    "load_task",
    "make_job",
    "simulate",
    "simulated_enclave",
    "simulation_job",
    "verify_evidence",
    "verify_quote",
    "verify_receipts",
]

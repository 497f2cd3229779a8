"""The public API, one module per party; `enclavefl` re-exports every name (see its docstring and docs/api.md).

Light to import, like `enclavefl`: each name loads its module on first use, so `enclavefl job submit` (which
uses `enclavefl.api.model_owner`) never imports torch through the data owner's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enclavefl.core.lazy import load_lazily

if TYPE_CHECKING:
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

_WHERE: dict[str, str] = {
    **dict.fromkeys(
        (
            "QuoteVerdict",
            "evidence_from_quote",
            "examine_evidence",
            "examine_quote",
            "verify_evidence",
            "verify_quote",
            "verify_receipts",
        ),
        "enclavefl.api.attestation",
    ),
    "DataOwnerClient": "enclavefl.api.data_owner",
    "make_job": "enclavefl.api.jobs",
    "ModelOwnerClient": "enclavefl.api.model_owner",
    **dict.fromkeys(
        ("SimulationHistory", "simulate", "simulated_enclave", "simulation_job"), "enclavefl.api.simulation"
    ),
    "load_task": "enclavefl.owner.preflight",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name on first use (so importing this package does not import torch or grpc)."""
    return load_lazily(__name__, _WHERE, globals(), name)


def __dir__() -> list[str]:
    return sorted(__all__)

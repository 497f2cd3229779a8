"""The one table of enclavefl's public names: each name and the module that defines it.

    from enclavefl.api.public import PUBLIC, load
    PUBLIC["JobSpec"]            # "enclavefl.core.job"
    load("JobSpec")              # the class, whose __module__ now reads "enclavefl"

`enclavefl/__init__.py` serves these names on first use and holds no list of its own: every enclave module import
runs that file, so it stays a few lines and this table (with everything it names) stays out of the enclave's
import closure. mypy reads the names' types from `enclavefl/__init__.pyi`, generated from this table and checked
against it by tests/api/test_public_names.py. A public class or function shows `enclavefl` as its `__module__`
(as trio's fixup_module_metadata does), so `help()`, reprs and tracebacks name the path users import.
"""

from __future__ import annotations

import importlib
import inspect
from types import MappingProxyType
from typing import Any

PACKAGE = "enclavefl"

# name -> the module defining it (a name equal to its module's last part is that module: enclavefl.errors)
PUBLIC = MappingProxyType(
    {
        "AttestationPolicy": "enclavefl.tee.verify.policy",
        "BaseModelSpec": "enclavefl.core.job",
        "DataOwnerClient": "enclavefl.api.data_owner",
        "DataOwnerReport": "enclavefl.owner.data_owner_loop",
        "EnclaveFLError": "enclavefl.errors",
        "EvalResult": "enclavefl.task.api",
        "Evidence": "enclavefl.tee.evidence",
        "FinalModel": "enclavefl.owner.model_owner",
        "FlowerClientTask": "enclavefl.task.flower",
        "JobSpec": "enclavefl.core.job",
        "ModelOwnerClient": "enclavefl.api.model_owner",
        "ModelWeights": "enclavefl.core.weights",
        "NodeStatus": "enclavefl.transport.api",
        "NumpyFitResult": "enclavefl.task.numpy_task",
        "NumpyTask": "enclavefl.task.numpy_task",
        "NumpyTaskAdapter": "enclavefl.task.numpy_task",
        "OwnerPartition": "enclavefl.sim.virtual_training",
        "PeftAdapters": "enclavefl.task.adapters",
        "Provenance": "enclavefl.owner.provenance",
        "QuoteVerdict": "enclavefl.api.attestation",
        "RoundReceipt": "enclavefl.core.receipts",
        "RoundSummary": "enclavefl.core.messages",
        "SimulationHistory": "enclavefl.api.simulation",
        "SitePolicy": "enclavefl.owner.site_policy",
        "StrategySpec": "enclavefl.core.job",
        "StreamedData": "enclavefl.task.data",
        "Task": "enclavefl.task.api",
        "TensorData": "enclavefl.task.data",
        "TorchTask": "enclavefl.task.api",
        "TrainConfig": "enclavefl.core.job",
        "TrainResult": "enclavefl.task.api",
        "TrainableSubset": "enclavefl.task",  # a torch.nn.Module: loaded by the package on first use
        "VerifiedEnclave": "enclavefl.tee.verify.verified",
        "causal_lm_loss": "enclavefl.task.adapters",
        "dump_job": "enclavefl.core.jobfile_write",
        "errors": "enclavefl.errors",
        "evidence_from_quote": "enclavefl.api.attestation",
        "examine_evidence": "enclavefl.api.attestation",
        "examine_quote": "enclavefl.api.attestation",
        "load_job": "enclavefl.core.jobfile",
        "load_policy": "enclavefl.tee.verify.policy_file",
        "load_task": "enclavefl.owner.preflight",
        "make_job": "enclavefl.api.jobs",
        "read_initial_model": "enclavefl.core.jobfile",
        "simulate": "enclavefl.api.simulation",
        "simulated_enclave": "enclavefl.api.simulation",
        "simulation_job": "enclavefl.api.simulation",
        "verify_evidence": "enclavefl.api.attestation",
        "verify_quote": "enclavefl.api.attestation",
        "verify_receipts": "enclavefl.api.attestation",
    }
)


def public_names() -> list[str]:
    """`enclavefl.__all__`: the table's names, sorted."""
    return sorted(PUBLIC)


def load(name: str) -> Any:
    """The public `name`, imported from its module (AttributeError naming `enclavefl` if there is no such name)."""
    where = PUBLIC.get(name)
    if where is None:
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    module = importlib.import_module(where)
    if where == f"{PACKAGE}.{name}":
        return module
    value = getattr(module, name)
    show_public_module(value)
    return value


def show_public_module(value: Any) -> None:
    """Give a class or function defined in an internal module the public path `enclavefl` as its `__module__`.

    Names that already show a public module (the errors show `enclavefl.errors`) keep it."""
    if not (inspect.isclass(value) or inspect.isfunction(value)):
        return
    module = getattr(value, "__module__", "")
    if module.startswith(f"{PACKAGE}.") and module != f"{PACKAGE}.errors":
        value.__module__ = PACKAGE

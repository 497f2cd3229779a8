"""enclavefl: federated learning whose aggregator runs in an attested SGX enclave.

The Python API, one object per party (docs/api.md has an example for each):

Data owner -- verify the node, then train every round on data that never leaves you:
    DataOwnerClient(node=, job=, policy=, key=, cert=, site_policy=, state_dir=)
        .run(task, data) -> DataOwnerReport; .cancel(); usable in `with`
Model owner -- attest the node, submit, watch, download with verification:
    ModelOwnerClient.connect(node, job=, policy=, key=, cert=)
        .submit(model) .status() .watch() -> Iterator[RoundSummary] .receipts() .download(out) -> FinalModel
    make_job(name=, initial_model=, owners=, rounds=, train=, strategy=, dp_epsilon=, ...) -> JobSpec
    build_job(...), dump_job(job), load_job(path), read_initial_model(path)
Simulation -- a whole federation in one process, from the same task:
    simulate(task, {"bob": data, ...}, rounds=, train=) -> SimulationHistory
    simulation_job(...), simulated_enclave(platform_dir)
Attestation -- for operators and auditors:
    verify_quote(quote, collateral_json, policy=) -> VerifiedEnclave; verify_evidence(evidence, policy=)
    examine_quote(...), examine_evidence(...) -> QuoteVerdict; evidence_from_quote(quote, collateral_json)
    verify_receipts(path, policy=, job=) -> Provenance
    AttestationPolicy, load_policy(path), SitePolicy, Evidence, VerifiedEnclave
Tasks -- what a data owner trains:
    TorchTask(model_factory=, loss_fn=, metrics=, load_data=), Task (protocol), TrainResult, EvalResult
    load_task("module:ATTR" or "file.py:ATTR") -> Task
    TensorData(x=, y=) in memory; StreamedData(dataset=) read in mini-batches from a torch Dataset
    NumpyTask (protocol: weights as named arrays), NumpyFitResult, NumpyTaskAdapter(numpy_task)
    FlowerClientTask(client_fn, parameter_names): an unchanged Flower NumPyClient
    TrainableSubset(model, trainable=, base_name=): only a named part trains and travels; the frozen rest is the
        job's base model (BaseModelSpec, by digest); PeftAdapters(base_model=, config=, base_name=): peft's adapters
        (LoRA) as that part (needs 'enclavefl[llm]'); causal_lm_loss for language models
Values -- JobSpec, BaseModelSpec, TrainConfig, StrategySpec, ModelWeights, RoundSummary, RoundReceipt, NodeStatus,
    DataOwnerReport, FinalModel, Provenance
Errors -- `enclavefl.errors`: every deliberate error is an EnclaveFLError leaf (ConfigError, AttestationError,
    ReceiptError, Cancelled, ...).

`import enclavefl` is light: each name is imported (with torch, grpc, ...) the first time it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enclavefl import errors
from enclavefl.core.lazy import load_lazily
from enclavefl.errors import EnclaveFLError

if TYPE_CHECKING:
    from enclavefl.api import (
        DataOwnerClient,
        ModelOwnerClient,
        QuoteVerdict,
        SimulationHistory,
        evidence_from_quote,
        examine_evidence,
        examine_quote,
        simulate,
        simulated_enclave,
        simulation_job,
        verify_evidence,
        verify_quote,
        verify_receipts,
    )
    from enclavefl.api.jobs import make_job
    from enclavefl.core.job import BaseModelSpec, JobSpec, StrategySpec, TrainConfig
    from enclavefl.core.jobfile import dump_job, load_job, read_initial_model
    from enclavefl.core.messages import RoundSummary
    from enclavefl.core.receipts import RoundReceipt
    from enclavefl.core.weights import ModelWeights
    from enclavefl.owner.data_owner_loop import DataOwnerReport
    from enclavefl.owner.model_owner import FinalModel
    from enclavefl.owner.model_owner_files import build_job
    from enclavefl.owner.preflight import load_task
    from enclavefl.owner.provenance import Provenance
    from enclavefl.owner.site_policy import SitePolicy
    from enclavefl.task import (
        EvalResult,
        PeftAdapters,
        StreamedData,
        Task,
        TensorData,
        TorchTask,
        TrainableSubset,
        TrainResult,
        causal_lm_loss,
    )
    from enclavefl.task.flower import FlowerClientTask
    from enclavefl.task.numpy_task import NumpyFitResult, NumpyTask, NumpyTaskAdapter
    from enclavefl.tee.evidence import Evidence, VerifiedEnclave
    from enclavefl.tee.verify.policy import AttestationPolicy
    from enclavefl.tee.verify.policy_file import load_policy
    from enclavefl.transport.api import NodeStatus

_WHERE: dict[str, str] = {
    **dict.fromkeys(
        (
            "DataOwnerClient",
            "ModelOwnerClient",
            "QuoteVerdict",
            "SimulationHistory",
            "evidence_from_quote",
            "examine_evidence",
            "examine_quote",
            "simulate",
            "simulated_enclave",
            "simulation_job",
            "verify_evidence",
            "verify_quote",
            "verify_receipts",
        ),
        "enclavefl.api",
    ),
    **dict.fromkeys(("BaseModelSpec", "JobSpec", "StrategySpec", "TrainConfig"), "enclavefl.core.job"),
    **dict.fromkeys(("dump_job", "load_job", "read_initial_model"), "enclavefl.core.jobfile"),
    "RoundSummary": "enclavefl.core.messages",
    "RoundReceipt": "enclavefl.core.receipts",
    "ModelWeights": "enclavefl.core.weights",
    "build_job": "enclavefl.owner.model_owner_files",
    "make_job": "enclavefl.api.jobs",
    "load_task": "enclavefl.owner.preflight",
    "Provenance": "enclavefl.owner.provenance",
    "DataOwnerReport": "enclavefl.owner.data_owner_loop",
    "FinalModel": "enclavefl.owner.model_owner",
    "SitePolicy": "enclavefl.owner.site_policy",
    **dict.fromkeys(
        (
            "EvalResult",
            "PeftAdapters",
            "StreamedData",
            "Task",
            "TensorData",
            "TorchTask",
            "TrainResult",
            "TrainableSubset",
            "causal_lm_loss",
        ),
        "enclavefl.task",
    ),
    "FlowerClientTask": "enclavefl.task.flower",
    **dict.fromkeys(("NumpyFitResult", "NumpyTask", "NumpyTaskAdapter"), "enclavefl.task.numpy_task"),
    **dict.fromkeys(("Evidence", "VerifiedEnclave"), "enclavefl.tee.evidence"),
    "AttestationPolicy": "enclavefl.tee.verify.policy",
    "load_policy": "enclavefl.tee.verify.policy_file",
    "NodeStatus": "enclavefl.transport.api",
}

__all__ = [
    "AttestationPolicy",
    "BaseModelSpec",
    "DataOwnerClient",
    "DataOwnerReport",
    "EnclaveFLError",
    "EvalResult",
    "Evidence",
    "FinalModel",
    "FlowerClientTask",
    "JobSpec",
    "ModelOwnerClient",
    "ModelWeights",
    "NodeStatus",
    "NumpyFitResult",
    "NumpyTask",
    "NumpyTaskAdapter",
    "PeftAdapters",
    "Provenance",
    "QuoteVerdict",
    "RoundReceipt",
    "RoundSummary",
    "SimulationHistory",
    "SitePolicy",
    "StrategySpec",
    "StreamedData",
    "Task",
    "TensorData",
    "TorchTask",
    "TrainConfig",
    "TrainResult",
    "TrainableSubset",
    "VerifiedEnclave",
    "build_job",
    "causal_lm_loss",
    "dump_job",
    "errors",
    "evidence_from_quote",
    "examine_evidence",
    "examine_quote",
    "load_job",
    "load_policy",
    "load_task",
    "make_job",
    "read_initial_model",
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
    return sorted({*globals(), *__all__})

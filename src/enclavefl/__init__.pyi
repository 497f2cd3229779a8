# Generated from enclavefl/api/public.py (the one table of public names) by tests/api/test_public_names.py:
#     .venv/bin/python tests/api/test_public_names.py > src/enclavefl/__init__.pyi
# mypy reads the names' types here; at run time enclavefl/__init__.py imports each on first use.

from enclavefl import errors as errors
from enclavefl.api.attestation import QuoteVerdict as QuoteVerdict
from enclavefl.api.attestation import evidence_from_quote as evidence_from_quote
from enclavefl.api.attestation import examine_evidence as examine_evidence
from enclavefl.api.attestation import examine_quote as examine_quote
from enclavefl.api.attestation import verify_evidence as verify_evidence
from enclavefl.api.attestation import verify_quote as verify_quote
from enclavefl.api.attestation import verify_receipts as verify_receipts
from enclavefl.api.data_owner import DataOwnerClient as DataOwnerClient
from enclavefl.api.jobs import make_job as make_job
from enclavefl.api.model_owner import ModelOwnerClient as ModelOwnerClient
from enclavefl.api.simulation import SimulationHistory as SimulationHistory
from enclavefl.api.simulation import simulate as simulate
from enclavefl.api.simulation import simulated_enclave as simulated_enclave
from enclavefl.api.simulation import simulation_job as simulation_job
from enclavefl.core.job import BaseModelSpec as BaseModelSpec
from enclavefl.core.job import JobSpec as JobSpec
from enclavefl.core.job import StrategySpec as StrategySpec
from enclavefl.core.job import TrainConfig as TrainConfig
from enclavefl.core.jobfile import load_job as load_job
from enclavefl.core.jobfile import read_initial_model as read_initial_model
from enclavefl.core.jobfile_write import dump_job as dump_job
from enclavefl.core.messages import RoundSummary as RoundSummary
from enclavefl.core.receipts import RoundReceipt as RoundReceipt
from enclavefl.core.weights import ModelWeights as ModelWeights
from enclavefl.errors import EnclaveFLError as EnclaveFLError
from enclavefl.owner.data_owner_loop import DataOwnerReport as DataOwnerReport
from enclavefl.owner.model_owner import FinalModel as FinalModel
from enclavefl.owner.preflight import load_task as load_task
from enclavefl.owner.provenance import Provenance as Provenance
from enclavefl.owner.site_policy import SitePolicy as SitePolicy
from enclavefl.sim.virtual_training import OwnerPartition as OwnerPartition
from enclavefl.task import TrainableSubset as TrainableSubset
from enclavefl.task.adapters import PeftAdapters as PeftAdapters
from enclavefl.task.adapters import causal_lm_loss as causal_lm_loss
from enclavefl.task.api import EvalResult as EvalResult
from enclavefl.task.api import Task as Task
from enclavefl.task.api import TorchTask as TorchTask
from enclavefl.task.api import TrainResult as TrainResult
from enclavefl.task.data import StreamedData as StreamedData
from enclavefl.task.data import TensorData as TensorData
from enclavefl.task.flower import FlowerClientTask as FlowerClientTask
from enclavefl.task.numpy_task import NumpyFitResult as NumpyFitResult
from enclavefl.task.numpy_task import NumpyTask as NumpyTask
from enclavefl.task.numpy_task import NumpyTaskAdapter as NumpyTaskAdapter
from enclavefl.tee.evidence import Evidence as Evidence
from enclavefl.tee.verify.policy import AttestationPolicy as AttestationPolicy
from enclavefl.tee.verify.policy_file import load_policy as load_policy
from enclavefl.tee.verify.verified import VerifiedEnclave as VerifiedEnclave
from enclavefl.transport.api import NodeStatus as NodeStatus

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
    "OwnerPartition",
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

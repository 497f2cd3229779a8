"""The task API used by data owners (never imported by the aggregator): PyTorch tasks, numpy tasks, Flower clients,
and models of which only a part trains and travels (adapters over a frozen base model)."""

from enclavefl.task.adapters import PeftAdapters, causal_lm_loss
from enclavefl.task.api import EvalResult, OwnerData, Task, TorchTask, TrainResult
from enclavefl.task.data import StreamedData, TensorData
from enclavefl.task.subset import TrainableSubset

__all__ = [
    "EvalResult",
    "OwnerData",
    "PeftAdapters",
    "StreamedData",
    "Task",
    "TensorData",
    "TorchTask",
    "TrainResult",
    "TrainableSubset",
    "causal_lm_loss",
]

"""The task API used by data owners (never imported by the aggregator): PyTorch tasks, numpy tasks, Flower clients."""

from enclavefl.task.api import EvalResult, OwnerData, Task, TorchTask, TrainResult
from enclavefl.task.data import StreamedData, TensorData

__all__ = ["EvalResult", "OwnerData", "StreamedData", "Task", "TensorData", "TorchTask", "TrainResult"]

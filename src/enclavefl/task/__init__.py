"""The PyTorch task API used by data owners (never imported by the aggregator)."""

from enclavefl.task.api import EvalResult, Task, TensorData, TorchTask, TrainResult

__all__ = ["EvalResult", "Task", "TensorData", "TorchTask", "TrainResult"]

"""The task API used by data owners (never imported by the aggregator): PyTorch tasks, numpy tasks, Flower clients,
and models of which only a part trains and travels (adapters over a frozen base model)."""

from typing import TYPE_CHECKING, Any

from enclavefl.task.api import EvalResult, OwnerData, Task, TorchTask, TrainResult
from enclavefl.task.data import StreamedData, TensorData

if TYPE_CHECKING:
    from enclavefl.task.adapters import PeftAdapters, causal_lm_loss
    from enclavefl.task.subset import TrainableSubset

# torch modules at import: loaded on first use, so that the rest of the task API imports without torch
_NEED_TORCH = {"PeftAdapters": "adapters", "causal_lm_loss": "adapters", "TrainableSubset": "subset"}

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


def __getattr__(name: str) -> Any:
    if name not in _NEED_TORCH:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_NEED_TORCH[name]}"), name)

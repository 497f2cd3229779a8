"""The task API used by data owners (never imported by the aggregator): PyTorch tasks, numpy tasks, Flower clients,
and models of which only a part trains and travels (adapters over a frozen base model)."""

from typing import TYPE_CHECKING, Any

from enclavefl.task.adapters import PeftAdapters, causal_lm_loss
from enclavefl.task.api import EvalResult, OwnerData, Task, TorchTask, TrainResult
from enclavefl.task.data import StreamedData, TensorData

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """TrainableSubset is a torch.nn.Module: it loads on first use; without torch a stand-in says torch is missing."""
    if name == "TrainableSubset":
        from enclavefl.task.optional_torch import require_torch, torch_only_class

        try:
            require_torch("enclavefl.TrainableSubset")
        except ModuleNotFoundError:
            return torch_only_class(
                "enclavefl.TrainableSubset", "A model of which only a named part trains and travels."
            )
        from enclavefl.task.subset import TrainableSubset

        return TrainableSubset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

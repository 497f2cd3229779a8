"""Tasks in any framework: weights as a dict of named numpy arrays.

    class MyTask:                                  # a NumpyTask: no torch in sight
        def initial_weights(self) -> dict[str, np.ndarray]: ...
        def fit(self, weights, data, config) -> NumpyFitResult: ...
        def evaluate(self, weights, data) -> EvalResult: ...

    task = NumpyTaskAdapter(MyTask())              # a Task: data owners, simulation and the CLI run it as any other

The adapter holds the arrays in a small torch module whose state_dict names are the arrays' names (so the job's
model schema, hashes and transport are the same as for a torch model, `task/array_module.py`); torch only carries
them, so the adapter needs it when made, and `NumpyTask`, `NumpyFitResult` import without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from enclavefl.core.job import TrainConfig
from enclavefl.errors import TaskError
from enclavefl.task.api import EvalResult, TrainResult
from enclavefl.task.optional_torch import require_torch

if TYPE_CHECKING:
    import torch

    from enclavefl.task.array_module import ArrayModule

NamedArrays = dict[str, NDArray[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NumpyFitResult:
    """One round of local training: the new weights (same names, shapes, dtypes), the examples used, local numbers."""

    weights: Mapping[str, NDArray[Any]]
    num_examples: int
    losses: tuple[float, ...] = ()  # seen only by the data owner
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class NumpyTask(Protocol):
    def initial_weights(self) -> Mapping[str, NDArray[Any]]:
        """The model's weights before training (their names, shapes and dtypes are the job's model schema)."""
        ...

    def fit(self, weights: Mapping[str, NDArray[Any]], data: Any, config: TrainConfig) -> NumpyFitResult:
        """Train from `weights` on the owner's `data` for one round; return the new weights."""
        ...

    def evaluate(self, weights: Mapping[str, NDArray[Any]], data: Any) -> EvalResult:
        """Loss and metrics of `weights` on `data`."""
        ...


def check_same_layout(before: Mapping[str, NDArray[Any]], after: Mapping[str, NDArray[Any]], who: str) -> None:
    """The trained weights keep every name, shape and dtype (TaskError naming the first difference)."""
    if set(before) != set(after):
        missing, extra = sorted(set(before) - set(after)), sorted(set(after) - set(before))
        raise TaskError(f"{who} returned other weight names: missing {missing}, unexpected {extra}")
    for name, array in before.items():
        new = np.asarray(after[name])
        if new.shape != array.shape or new.dtype != array.dtype:
            raise TaskError(
                f"{who} returned {name} as {new.shape} {new.dtype}, the model has {array.shape} {array.dtype}"
            )


@dataclass(frozen=True, slots=True)
class NumpyTaskAdapter:
    """Runs a `NumpyTask` wherever a `Task` runs (data owner, simulation, `data-owner run --task`)."""

    numpy_task: NumpyTask

    def __post_init__(self) -> None:
        require_torch(f"enclavefl.{type(self).__name__}")  # FlowerClientTask too

    def create_model(self) -> torch.nn.Module:
        from enclavefl.task.array_module import ArrayModule

        return ArrayModule(self.numpy_task.initial_weights())

    def train(
        self, model: torch.nn.Module, data: Any, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        module = _as_array_module(model)
        before = module.arrays()
        result = self.numpy_task.fit(before, data, config)
        check_same_layout(before, result.weights, f"{type(self.numpy_task).__name__}.fit")
        module.set_arrays(result.weights)
        return TrainResult(num_examples=result.num_examples, losses=result.losses)

    def evaluate(self, model: torch.nn.Module, data: Any) -> EvalResult:
        return self.numpy_task.evaluate(_as_array_module(model).arrays(), data)

    @property
    def load_data(self) -> Any:
        """The wrapped task's own data loading, when it has one (`data-owner run --data PATH`)."""
        return getattr(self.numpy_task, "load_data", None)


def _as_array_module(model: torch.nn.Module) -> ArrayModule:
    from enclavefl.task.array_module import ArrayModule

    if not isinstance(model, ArrayModule):
        raise TaskError(f"a numpy task trains the model it created, not a {type(model).__name__}")
    return model

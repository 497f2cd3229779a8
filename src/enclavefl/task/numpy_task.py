"""Tasks in any framework: weights as a dict of named numpy arrays.

    class MyTask:                                  # a NumpyTask: no torch in sight
        def initial_weights(self) -> dict[str, np.ndarray]: ...
        def fit(self, weights, data, config) -> NumpyFitResult: ...
        def evaluate(self, weights, data) -> EvalResult: ...

    task = NumpyTaskAdapter(MyTask())              # a Task: data owners, simulation and the CLI run it as any other

The adapter holds the arrays in a small torch module whose state_dict names are the arrays' names (so the job's
model schema, hashes and transport are the same as for a torch model); torch only carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray

from enclavefl.core.job import TrainConfig
from enclavefl.errors import TaskError
from enclavefl.task.api import EvalResult, TrainResult

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


class ArrayModule(torch.nn.Module):
    """Named arrays as buffers of a torch module: `state_dict()` keys are exactly the arrays' names."""

    def __init__(self, arrays: Mapping[str, NDArray[Any]]) -> None:
        super().__init__()
        for name, array in arrays.items():
            *path, leaf = name.split(".")
            owner: torch.nn.Module = self
            try:
                for part in path:
                    child = owner._modules.get(part)
                    if child is None:
                        child = torch.nn.Module()
                        owner.add_module(part, child)
                    owner = child
                owner.register_buffer(leaf, torch.from_numpy(np.array(array, copy=True)))
            except (KeyError, TypeError) as exc:
                raise TaskError(f"weight name {name!r} cannot be a tensor name: {exc}") from None

    def arrays(self) -> NamedArrays:
        return {name: t.detach().cpu().numpy().copy() for name, t in self.state_dict().items()}

    def set_arrays(self, arrays: Mapping[str, NDArray[Any]]) -> None:
        self.load_state_dict({n: torch.from_numpy(np.array(a, copy=True)) for n, a in arrays.items()}, strict=True)


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

    def create_model(self) -> torch.nn.Module:
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
    if not isinstance(model, ArrayModule):
        raise TaskError(f"a numpy task trains the model it created, not a {type(model).__name__}")
    return model

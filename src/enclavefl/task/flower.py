"""An existing Flower `NumPyClient`, unchanged, as an enclavefl task: no Flower server component runs.

    class CifarClient(fl.client.NumPyClient):        # the Flower user's code, as it is
        def get_parameters(self, config): ...
        def fit(self, parameters, config): ...        # -> (parameters, num_examples, metrics)
        def evaluate(self, parameters, config): ...   # -> (loss, num_examples, metrics)

    task = FlowerClientTask(client_fn=lambda data: CifarClient(data), parameter_names=job_tensor_names)

Flower passes weights as an ordered list; the job names each tensor. `parameter_names` maps list position i to
the job's tensor name i (the model owner's initial model fixes both); a client whose list has another length,
or an array of another shape or dtype, is refused with a ModelSchemaMismatch naming the tensor. `client_fn`
receives the data owner's data (whatever `--data` or the simulation's datasets hold) and builds the client once.
The round's `TrainConfig` reaches `fit` as Flower's `config` dict (`local_steps`, `local_epochs`, `batch_size`,
`lr`, `seed`: the ones that are set).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from enclavefl.core.job import TrainConfig
from enclavefl.errors import ModelSchemaMismatch, TaskError
from enclavefl.task.api import EvalResult
from enclavefl.task.numpy_task import NamedArrays, NumpyFitResult, NumpyTaskAdapter

FlowerScalar = bool | bytes | float | int | str
FlowerConfig = dict[str, FlowerScalar]


class NumPyClientLike(Protocol):
    """What enclavefl calls on a Flower `NumPyClient` (the same three methods Flower calls)."""

    def get_parameters(self, config: FlowerConfig) -> list[NDArray[Any]]: ...

    def fit(
        self, parameters: list[NDArray[Any]], config: FlowerConfig
    ) -> tuple[list[NDArray[Any]], int, Mapping[str, FlowerScalar]]: ...

    def evaluate(
        self, parameters: list[NDArray[Any]], config: FlowerConfig
    ) -> tuple[float, int, Mapping[str, FlowerScalar]]: ...


class FlowerNumpyTask:
    """A NumpyTask over Flower clients: one client per data owner's data, built by `client_fn`."""

    def __init__(self, client_fn: Callable[[Any], NumPyClientLike], parameter_names: Sequence[str]) -> None:
        if len(set(parameter_names)) != len(parameter_names) or not parameter_names:
            raise TaskError("parameter_names: give each of the job's tensor names once, in Flower's order")
        self.client_fn = client_fn
        self.parameter_names = tuple(parameter_names)
        self._clients: dict[int, tuple[Any, NumPyClientLike]] = {}  # id(data) -> (data kept alive, client)

    def client(self, data: Any) -> NumPyClientLike:
        entry = self._clients.get(id(data))
        if entry is None:
            entry = (data, self.client_fn(data))
            self._clients[id(data)] = entry
        return entry[1]

    def named(self, arrays: Sequence[NDArray[Any]], what: str) -> NamedArrays:
        """Flower's ordered list -> the job's named tensors; refused unless there is one array per name."""
        if len(arrays) != len(self.parameter_names):
            raise ModelSchemaMismatch(
                f"the Flower client's {what} has {len(arrays)} arrays but the job has {len(self.parameter_names)} "
                f"tensors ({', '.join(self.parameter_names)}): the ordered list cannot be mapped onto them"
            )
        return {name: np.asarray(a) for name, a in zip(self.parameter_names, arrays, strict=True)}

    def ordered(self, weights: Mapping[str, NDArray[Any]]) -> list[NDArray[Any]]:
        return [np.array(weights[name], copy=True) for name in self.parameter_names]

    def initial_weights(self) -> NamedArrays:
        raise TaskError("a Flower task's initial weights come from a client: use FlowerClientTask")

    def fit(self, weights: Mapping[str, NDArray[Any]], data: Any, config: TrainConfig) -> NumpyFitResult:
        new, num_examples, metrics = self.client(data).fit(self.ordered(weights), flower_config(config))
        named = self.named(new, "fit() result")
        for name, array in named.items():
            if array.shape != weights[name].shape or array.dtype != weights[name].dtype:
                raise ModelSchemaMismatch(
                    f"the Flower client's fit() returned {name} (position {self.parameter_names.index(name)}) as "
                    f"{array.shape} {array.dtype}; the job has {weights[name].shape} {weights[name].dtype}"
                )
        loss = metrics.get("loss", metrics.get("train_loss"))  # Flower examples report either
        losses = (float(loss),) if isinstance(loss, int | float) else ()
        return NumpyFitResult(weights=named, num_examples=int(num_examples), losses=losses, metrics=_floats(metrics))

    def evaluate(self, weights: Mapping[str, NDArray[Any]], data: Any) -> EvalResult:
        loss, num_examples, metrics = self.client(data).evaluate(self.ordered(weights), {})
        return EvalResult(num_examples=int(num_examples), loss=float(loss), metrics=_floats(metrics))


class FlowerClientTask(NumpyTaskAdapter):
    """A `Task` running a Flower `NumPyClient` built by `client_fn(data)`; the initial weights are the client's
    `get_parameters({})` on `initial_data` (the model owner's copy of the model; default: `client_fn(None)`)."""

    def __init__(
        self, client_fn: Callable[[Any], NumPyClientLike], parameter_names: Sequence[str], *, initial_data: Any = None
    ) -> None:
        flower = _InitialFromClient(client_fn, parameter_names, initial_data)
        super().__init__(flower)


class _InitialFromClient(FlowerNumpyTask):
    def __init__(self, client_fn: Callable[[Any], NumPyClientLike], names: Sequence[str], initial_data: Any) -> None:
        super().__init__(client_fn, names)
        self.initial_data = initial_data

    def initial_weights(self) -> NamedArrays:
        return self.named(self.client(self.initial_data).get_parameters({}), "get_parameters() result")


def flower_config(config: TrainConfig) -> FlowerConfig:
    """The round's training settings as Flower's config dict (only the ones that are set)."""
    values: dict[str, FlowerScalar | None] = {
        "local_steps": config.local_steps,
        "local_epochs": config.local_epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
    }
    return {k: v for k, v in values.items() if v is not None}


def _floats(metrics: Mapping[str, FlowerScalar]) -> dict[str, float]:
    """Numeric metrics only (Flower allows strings and bytes; an aggregate needs numbers)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}

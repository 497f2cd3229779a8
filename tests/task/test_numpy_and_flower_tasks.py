"""Frameworks other than PyTorch: a scikit-learn model through the numpy task interface, and Flower NumPyClients
(written as Flower users write them) through the adapter, with mismatches refused by name."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier

import enclavefl
from enclavefl import EvalResult, FlowerClientTask, NumpyFitResult, NumpyTaskAdapter, TrainConfig
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.errors import ModelSchemaMismatch, TaskError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

Data = tuple[NDArray[Any], NDArray[Any]]


class SgdDigits:
    """A NumpyTask: scikit-learn's SGDClassifier, its coef_ and intercept_ as the named weights."""

    def initial_weights(self) -> dict[str, NDArray[Any]]:
        return {"linear.coef": np.zeros((10, 64)), "linear.intercept": np.zeros(10)}

    def _model(self, weights: Mapping[str, NDArray[Any]]) -> SGDClassifier:
        model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.05, random_state=0)
        model.classes_ = np.arange(10)
        model.coef_ = np.array(weights["linear.coef"], copy=True)
        model.intercept_ = np.array(weights["linear.intercept"], copy=True)
        return model

    def fit(self, weights: Mapping[str, NDArray[Any]], data: Data, config: TrainConfig) -> NumpyFitResult:
        model = self._model(weights)
        for _ in range(config.local_epochs or 1):
            model.partial_fit(data[0], data[1], classes=np.arange(10))
        return NumpyFitResult(
            weights={"linear.coef": model.coef_, "linear.intercept": model.intercept_}, num_examples=len(data[0])
        )

    def evaluate(self, weights: Mapping[str, NDArray[Any]], data: Data) -> EvalResult:
        accuracy = float(self._model(weights).score(data[0], data[1]))
        return EvalResult(num_examples=len(data[0]), loss=1 - accuracy, metrics={"accuracy": accuracy})


def digits_owners() -> dict[str, Data]:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return {"bob": (x[::2], y[::2]), "alice": (x[1::2], y[1::2])}


def test_a_scikit_learn_model_trains_in_a_federation_through_the_numpy_interface() -> None:
    task = NumpyTaskAdapter(SgdDigits())
    owners = digits_owners()

    history = enclavefl.simulate(task, owners, rounds=3, train=TrainConfig(local_epochs=2, lr=0.1))

    assert set(history.final_model) == {"linear.coef", "linear.intercept"}
    assert history.final_model["linear.coef"].dtype == np.float64
    accuracy = task.evaluate(history.load_model(task), owners["alice"]).metrics["accuracy"]
    assert accuracy > 0.85  # 10 classes: chance is 0.1


def test_a_numpy_task_returning_another_shape_is_refused_by_name() -> None:
    class Broken(SgdDigits):
        def fit(self, weights: Mapping[str, NDArray[Any]], data: Data, config: TrainConfig) -> NumpyFitResult:
            return NumpyFitResult(weights={**weights, "linear.intercept": np.zeros(9)}, num_examples=1)

    task = NumpyTaskAdapter(Broken())
    with pytest.raises(TaskError, match=r"linear.intercept as \(9,\)"):
        task.train(task.create_model(), digits_owners()["bob"], TrainConfig(local_steps=1), global_model=None)


# --- Flower: clients exactly as a Flower user writes them (flwr's NumPyClient when installed) --------------------
try:
    from flwr.client import NumPyClient
except ImportError:
    NumPyClient = object  # type: ignore[assignment,misc]


class MeanClient(NumPyClient):  # type: ignore[misc]
    """Flower-style: parameters are [w, b]; fit moves them toward the client's data mean."""

    def __init__(self, values: NDArray[Any]) -> None:
        self.values = values
        self.w = np.zeros((2, 3), np.float32)
        self.b = np.zeros(3, np.float32)

    def get_parameters(self, config):  # type: ignore[no-untyped-def]
        return [self.w, self.b]

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        self.w, self.b = parameters
        step = float(config["lr"])
        self.w = (self.w + step * (self.values.mean() - self.w)).astype(np.float32)
        self.b = (self.b + step).astype(np.float32)
        return [self.w, self.b], len(self.values), {"loss": float(abs(self.values.mean() - self.w.mean()))}

    def evaluate(self, parameters, config):  # type: ignore[no-untyped-def]
        w, _ = parameters
        return float(abs(self.values.mean() - w.mean())), len(self.values), {"gap": float(w.mean())}


def test_a_flower_client_runs_unchanged_and_its_list_maps_onto_the_named_tensors() -> None:
    data = {"bob": np.full(4, 1.0), "alice": np.full(4, 3.0)}
    task = FlowerClientTask(MeanClient, ["layer.weight", "layer.bias"], initial_data=np.zeros(1))

    history = enclavefl.simulate(task, data, rounds=2, train=TrainConfig(local_steps=1, lr=0.5))

    # round 1: both from 0 -> 0.5 and 1.5, mean 1.0; round 2: 1.0 -> 1.0 and 2.0, mean 1.5
    np.testing.assert_allclose(history.final_model["layer.weight"], np.full((2, 3), 1.5))
    np.testing.assert_allclose(history.final_model["layer.bias"], np.full(3, 1.0))
    assert weights_from_module(task.create_model()).schema == history.job.model_schema


def test_a_flower_client_returning_more_arrays_than_the_job_names_is_refused() -> None:
    class ExtraArray(MeanClient):
        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            new, n, metrics = super().fit(parameters, config)
            return [*new, np.zeros(1)], n, metrics

    task = FlowerClientTask(ExtraArray, ["layer.weight", "layer.bias"], initial_data=np.zeros(1))
    with pytest.raises(ModelSchemaMismatch, match="3 arrays but the job has 2 tensors"):
        task.train(task.create_model(), np.ones(2), TrainConfig(local_steps=1), global_model=None)


def test_a_flower_client_returning_another_shape_is_refused_naming_the_tensor_and_position() -> None:
    class Reshaped(MeanClient):
        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            new, n, metrics = super().fit(parameters, config)
            return [new[0].T, new[1]], n, metrics

    task = FlowerClientTask(Reshaped, ["layer.weight", "layer.bias"], initial_data=np.zeros(1))
    with pytest.raises(ModelSchemaMismatch, match=r"layer.weight \(position 0\) as \(3, 2\)"):
        task.train(task.create_model(), np.ones(2), TrainConfig(local_steps=1), global_model=None)


def test_names_that_do_not_match_the_job_are_refused_before_any_round() -> None:
    good = FlowerClientTask(MeanClient, ["layer.weight", "layer.bias"], initial_data=np.zeros(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        initial = weights_from_module(good.create_model())
    job = enclavefl.simulation_job(initial, ["bob"], rounds=1, train=TrainConfig(local_steps=1))
    renamed = FlowerClientTask(MeanClient, ["w", "b"], initial_data=np.zeros(1))
    with pytest.raises(ModelSchemaMismatch, match=r"layer\.weight"):
        enclavefl.simulate(renamed, {"bob": np.ones(2)}, job=job, initial_model=initial)


def test_with_real_flwr_the_client_is_a_flower_numpyclient() -> None:
    flwr = pytest.importorskip("flwr", reason="flwr is optional (pip install enclavefl[flower])")
    assert issubclass(MeanClient, flwr.client.NumPyClient)

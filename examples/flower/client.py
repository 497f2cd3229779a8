"""A Flower client as a Flower user writes it (Flower's scikit-learn quickstart): nothing enclavefl-specific.

enclavefl runs it unchanged (run.py): `FlowerClientTask` calls the same three methods Flower's runtime would, and
no Flower server component runs; the secure worker aggregates instead. flwr itself is optional: without it the
class derives from `object`, which is all enclavefl needs.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

try:
    from flwr.client import NumPyClient
except ImportError:  # flwr not installed: the same class, without Flower's base
    NumPyClient = object  # type: ignore[assignment,misc]

CLASSES = 10
FEATURES = 64


def set_model_params(model: LogisticRegression, params: list[np.ndarray]) -> LogisticRegression:
    model.coef_ = params[0]
    if model.fit_intercept:
        model.intercept_ = params[1]
    return model


def get_model_parameters(model: LogisticRegression) -> list[np.ndarray]:
    if model.fit_intercept:
        return [model.coef_, model.intercept_]
    return [model.coef_]


def set_initial_params(model: LogisticRegression) -> None:
    model.classes_ = np.arange(CLASSES)
    model.coef_ = np.zeros((CLASSES, FEATURES))
    if model.fit_intercept:
        model.intercept_ = np.zeros((CLASSES,))


class DigitsClient(NumPyClient):  # type: ignore[misc]
    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> None:
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.model = LogisticRegression(max_iter=1, warm_start=True)
        set_initial_params(self.model)

    def get_parameters(self, config):  # type: ignore[no-untyped-def]
        return get_model_parameters(self.model)

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        set_model_params(self.model, parameters)
        self.model.max_iter = int(config.get("local_epochs", 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter=1 per round does not converge, by design
            self.model.fit(self.x_train, self.y_train)
        return get_model_parameters(self.model), len(self.x_train), {}

    def evaluate(self, parameters, config):  # type: ignore[no-untyped-def]
        set_model_params(self.model, parameters)
        loss = log_loss(self.y_test, self.model.predict_proba(self.x_test), labels=list(range(CLASSES)))
        accuracy = self.model.score(self.x_test, self.y_test)
        return float(loss), len(self.x_test), {"accuracy": float(accuracy)}

"""Schema and value validation names the tensor and the problem."""

from __future__ import annotations

import re

import numpy as np
import pytest

from enclavefl.core.validation import check_finite, check_schema
from enclavefl.core.weights import ModelSchema, ModelWeights
from enclavefl.errors import (
    DtypeMismatch,
    MissingTensor,
    NonFiniteValues,
    ShapeMismatch,
    UnexpectedTensor,
    UpdateTooLarge,
)

SCHEMA = ModelWeights({"w": np.zeros((2, 2), np.float32), "n": np.zeros((), np.int64)}).schema


def validate_update(update: ModelWeights, expected: ModelSchema, *, max_bytes: int | None = None) -> None:
    """The node's two checks in its order (enclave/staging.py): the schema before any byte, then the values."""
    check_schema(update.schema, expected, max_bytes=max_bytes)
    for name, values in update.items():
        check_finite(name, values)


def test_matching_update_passes() -> None:
    validate_update(ModelWeights({"w": np.ones((2, 2), np.float32), "n": np.array(3)}), SCHEMA)


@pytest.mark.parametrize(
    ("tensors", "error", "fragment"),
    [
        ({"w": np.ones((2, 2), np.float32)}, MissingTensor, "'n'"),
        ({"w": np.ones((2, 2), np.float32), "n": np.array(1), "x": np.ones(1)}, UnexpectedTensor, "'x'"),
        ({"w": np.ones((4,), np.float32), "n": np.array(1)}, ShapeMismatch, "tensor 'w': shape [4]"),
        ({"w": np.ones((2, 2), np.float16), "n": np.array(1)}, DtypeMismatch, "tensor 'w': dtype float16"),
        ({"w": np.array([[0, np.inf], [0, 0]], np.float32), "n": np.array(1)}, NonFiniteValues, "'w': 1 value"),
    ],
)
def test_invalid_update_raises_precise_leaf(
    tensors: dict[str, np.ndarray], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=re.escape(fragment)):
        validate_update(ModelWeights(tensors), SCHEMA)


def test_size_limit() -> None:
    with pytest.raises(UpdateTooLarge, match="limit is 10"):
        validate_update(ModelWeights({"w": np.ones((2, 2), np.float32), "n": np.array(1)}), SCHEMA, max_bytes=10)

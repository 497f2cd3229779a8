"""Validation of an update against the global model's schema, before it touches the accumulator.

check_schema(header.schema, model.schema, max_bytes=limit)   # names, shapes, dtypes, size: before any byte
check_finite(name, block)                                      # each block as it arrives (enclave/staging.py)
"""

from __future__ import annotations

import numpy as np

from enclavefl.core.weights import Array, ModelSchema, TensorSpec
from enclavefl.errors import (
    DtypeMismatch,
    MissingTensor,
    NonFiniteValues,
    ShapeMismatch,
    UnexpectedTensor,
    UpdateTooLarge,
)


def check_schema(received: ModelSchema, expected: ModelSchema, *, max_bytes: int | None = None) -> None:
    """Names, shapes, dtypes and total size must equal the global model's; raises the first problem found."""
    got = {t.name: t for t in received.tensors}
    want = {t.name: t for t in expected.tensors}
    missing = [n for n in want if n not in got]
    if missing:
        raise MissingTensor(f"update lacks tensor(s) {', '.join(repr(n) for n in missing)}")
    extra = [n for n in got if n not in want]
    if extra:
        raise UnexpectedTensor(f"update has tensor(s) {', '.join(repr(n) for n in extra)} the model does not have")
    for name, spec in want.items():
        check_spec(got[name], spec)
    if max_bytes is not None and received.nbytes > max_bytes:
        raise UpdateTooLarge(f"update holds {received.nbytes} bytes of tensors, the job's limit is {max_bytes}")


def check_spec(received: TensorSpec, expected: TensorSpec) -> None:
    if received.dtype != expected.dtype:
        raise DtypeMismatch(f"tensor {expected.name!r}: dtype {received.dtype}, the model has {expected.dtype}")
    if received.shape != expected.shape:
        raise ShapeMismatch(
            f"tensor {expected.name!r}: shape {list(received.shape)}, the model has {list(expected.shape)}"
        )


def check_finite(name: str, values: Array) -> None:
    """Refuse NaN and Inf (floating tensors only; integer tensors are always finite)."""
    if values.dtype.kind == "f" and not bool(np.isfinite(values).all()):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise NonFiniteValues(f"tensor {name!r}: {bad} value(s) are NaN or Inf")

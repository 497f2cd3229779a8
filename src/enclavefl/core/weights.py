"""Model weights as ordered, named numpy arrays, and the schema every update must match."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from enclavefl.errors import ConfigError

Array = npt.NDArray[np.generic]

# numpy dtype name <-> safetensors dtype tag. bfloat16 has no numpy dtype and is refused.
DTYPE_TO_SAFETENSORS: dict[str, str] = {
    "float16": "F16",
    "float32": "F32",
    "float64": "F64",
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "int64": "I64",
    "uint8": "U8",
    "bool": "BOOL",
}
SAFETENSORS_TO_DTYPE: dict[str, str] = {v: k for k, v in DTYPE_TO_SAFETENSORS.items()}
# The weights digest: this tag, the canonical schema JSON, then each tensor's bytes in name order. A job's frozen
# base model is named by the same construction over its tensors (task/subset.py computes it from torch tensors).
WEIGHTS_DIGEST_DOMAIN = b"enclavefl/model/v2\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorSpec:
    """Name, shape and dtype of one tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.dtype).itemsize


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSchema:
    """The tensor specs of a model, in canonical order (by name): what every update must match exactly.

    Canonical because the order a framework lists tensors in (torch's state_dict, a file's header) says
    nothing about the model: two listings of the same tensors are one schema, with one digest.
    """

    tensors: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", tuple(sorted(self.tensors, key=lambda t: t.name)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def spec(self, name: str) -> TensorSpec:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_canonical_json(self) -> str:
        """Deterministic text form, part of the job digest."""
        return json.dumps(
            [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.tensors],
            separators=(",", ":"),
        )


class ModelWeights(Mapping[str, Array]):
    """A mapping of tensor names to numpy arrays, iterated in canonical order (by name).

    Equal weights are equal whatever order they were built in: same schema, same digest, same encoding.
    The arrays are owned by this object; callers that need to mutate one copy it first.
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, Array] | Iterator[tuple[str, Array]]) -> None:
        items = tensors.items() if isinstance(tensors, Mapping) else tensors
        collected: dict[str, Array] = {}
        for name, value in items:
            arr = np.asarray(value)
            if arr.dtype.name not in DTYPE_TO_SAFETENSORS:
                raise ConfigError(f"tensor {name!r}: dtype {arr.dtype} is not supported")
            collected[name] = arr
        self._tensors: dict[str, Array] = dict(sorted(collected.items()))

    def __getitem__(self, name: str) -> Array:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    @property
    def schema(self) -> ModelSchema:
        return ModelSchema(
            tensors=tuple(
                TensorSpec(name=n, shape=tuple(int(d) for d in a.shape), dtype=a.dtype.name)
                for n, a in self._tensors.items()
            )
        )

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self._tensors.values())

    def copy(self) -> ModelWeights:
        return ModelWeights({n: a.copy() for n, a in self._tensors.items()})

    def allclose(self, other: ModelWeights, *, atol: float) -> bool:
        """Same names in the same order and values within `atol` (for tests and reports)."""
        if list(self) != list(other):
            return False
        return all(np.allclose(self[n], other[n], rtol=0.0, atol=atol) for n in self)

    def sha256(self) -> bytes:
        """The weights digest: SHA-256 over names, shapes, dtypes and bytes in canonical order.

        The model's identity in job specs and receipts (`*_model_sha256`). It is not the SHA-256 of any file:
        `encode_weights` is canonical, so one digest has one encoding, but the file's hash is another number.
        """
        h = hashlib.sha256(WEIGHTS_DIGEST_DOMAIN)
        h.update(self.schema.to_canonical_json().encode())
        for a in self._tensors.values():
            h.update(np.ascontiguousarray(a).view(np.uint8).data)
        return h.digest()

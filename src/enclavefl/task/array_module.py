"""Named numpy arrays as the buffers of a torch module, so a numpy task travels as any torch model does.

    module = ArrayModule({"layer.w": w, "b": b})     # state_dict() keys: "layer.w", "b"
    module.set_arrays(trained); module.arrays()

Used by `NumpyTaskAdapter` (numpy_task.py), which imports this module only when it builds a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from enclavefl.errors import TaskError


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

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {name: t.detach().cpu().numpy().copy() for name, t in self.state_dict().items()}

    def set_arrays(self, arrays: Mapping[str, NDArray[Any]]) -> None:
        self.load_state_dict({n: torch.from_numpy(np.array(a, copy=True)) for n, a in arrays.items()}, strict=True)

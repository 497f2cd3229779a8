"""The one place in core that imports torch: state_dict <-> ModelWeights."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from enclavefl.core.weights import ModelWeights


def weights_from_state_dict(state: Mapping[str, torch.Tensor]) -> ModelWeights:
    """Copy a state_dict into ModelWeights (detached, on CPU, owned by the result)."""
    return ModelWeights({name: t.detach().cpu().numpy().copy() for name, t in state.items()})


def weights_from_module(module: torch.nn.Module) -> ModelWeights:
    return weights_from_state_dict(module.state_dict())


def state_dict_from_weights(weights: ModelWeights) -> dict[str, torch.Tensor]:
    """Tensors that own their memory (safe to load into a module and train)."""
    return {name: torch.from_numpy(np.array(a, copy=True)) for name, a in weights.items()}


def load_weights_into(module: torch.nn.Module, weights: ModelWeights) -> None:
    """Load weights into a module in place; names and shapes must match exactly."""
    module.load_state_dict(state_dict_from_weights(weights), strict=True)

"""A model of which only a named part trains and travels; the rest is a frozen base model, bound to the job.

    model = TrainableSubset(resnet, trainable=["fc.weight", "fc.bias"], base_name="resnet18-imagenet")
    model.state_dict().keys()        # fc.weight, fc.bias: what the job's model schema holds and owners upload
    model.frozen_base                # BaseModelSpec(name="resnet18-imagenet", sha256=<weights digest of the rest>)
    TorchTask(model_factory=lambda: TrainableSubset(build(), trainable=[...], base_name=...), loss_fn=...)

The wrapper registers the travelling parameters (the same `Parameter` objects, no copy) under their own names, so
`state_dict`, `load_state_dict`, `parameters` and the optimizer see exactly the travelling part: everything that
moves a model (owners' uploads, the global model, DP clipping and noise, robust rules, masked mode, receipts)
works on it unchanged. The full model runs the forward pass; its other tensors are frozen (`requires_grad=False`)
and never leave the owner. The job names them by digest (`[base_model]`), and `check_base_model` refuses an owner
whose local base differs, before it trains or sends anything (owner/preflight.py calls it).

The base digest is the weights digest (`ModelWeights.sha256`, as for the initial model): SHA-256 over a domain tag,
the canonical schema (names sorted, shapes, dtypes) and each tensor's bytes in name order; independent of the
order a state_dict lists tensors in, and computed here from torch tensors without copying them (bfloat16 too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from enclavefl.core.job import BaseModelSpec
from enclavefl.core.weights import WEIGHTS_DIGEST_DOMAIN
from enclavefl.errors import BaseModelMismatch, TaskError

NameFilter = Callable[[str], bool]


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """The weights digest (hex) of named torch tensors: `ModelWeights(...).sha256()`, without copying them."""
    ordered = sorted(tensors.items())
    schema = [
        {"name": name, "shape": [int(d) for d in t.shape], "dtype": str(t.dtype).removeprefix("torch.")}
        for name, t in ordered
    ]
    h = hashlib.sha256(WEIGHTS_DIGEST_DOMAIN)
    h.update(json.dumps(schema, separators=(",", ":")).encode())
    for _, tensor in ordered:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        if flat.numel():
            h.update(flat.view(torch.uint8).numpy().data)  # little-endian bytes, as safetensors stores them
    return h.hexdigest()


def base_model_spec(model: torch.nn.Module, *, name: str, exclude: Iterable[str] = ()) -> BaseModelSpec:
    """`model`'s state_dict (less `exclude`) as a base model the job can name: its label and weights digest."""
    skip = set(exclude)
    frozen = {n: t for n, t in model.state_dict().items() if n not in skip}
    return BaseModelSpec(name=name, sha256=tensors_sha256(frozen))


class TrainableSubset(torch.nn.Module):
    """`model` of which only the `trainable` parameters (exact names, or a filter on names) train and travel."""

    frozen_base: BaseModelSpec

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        trainable: Iterable[str] | NameFilter,
        base_name: str,
        base_sha256: str | None = None,
    ) -> None:
        """`base_sha256`: the base's digest when the caller computed it before wrapping (PeftAdapters does, so the
        digest is the plain base model's); default: the digest of `model`'s tensors that do not travel."""
        super().__init__()
        params = dict(model.named_parameters())
        chosen = _chosen_names(params, trainable)
        for name, param in params.items():
            param.requires_grad_(name in chosen)
        object.__setattr__(self, "_full_model", model)  # not a submodule: its tensors stay out of state_dict
        self.frozen_base = BaseModelSpec(
            name=base_name,
            sha256=base_sha256 or tensors_sha256({n: t for n, t in model.state_dict().items() if n not in chosen}),
        )
        for name in sorted(chosen):
            _register(self, name, params[name])

    @property
    def full_model(self) -> torch.nn.Module:
        """The whole model (base and travelling part), e.g. to generate text with it."""
        model: torch.nn.Module = self.__dict__["_full_model"]
        return model

    def base_nbytes(self) -> int:
        """Bytes of the frozen tensors, each counted once (a tied embedding and output layer share theirs)."""
        travelling = {p.data_ptr() for p in self.parameters()}
        seen: dict[int, int] = {}
        for tensor in self.full_model.state_dict().values():
            if tensor.data_ptr() not in travelling:
                seen[tensor.data_ptr()] = max(seen.get(tensor.data_ptr(), 0), tensor.nbytes)
        return sum(seen.values())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.full_model(*args, **kwargs)

    def train(self, mode: bool = True) -> TrainableSubset:
        """Train or eval mode for the whole model (dropout, normalisation), not only the travelling part."""
        self.full_model.train(mode)
        super().train(mode)
        return self


def check_base_model(model: torch.nn.Module, expected: BaseModelSpec | None) -> None:
    """Refuse (BaseModelMismatch) a task's model whose frozen base is not the job's `[base_model]`, by digest."""
    local: BaseModelSpec | None = getattr(model, "frozen_base", None)
    if expected is None:
        if local is not None:
            raise BaseModelMismatch(
                f"the task's model trains a part of a frozen base model {local.name!r} (sha256 {local.sha256}) "
                "but the job names no [base_model]: a job must bind the base model its travelling tensors train on"
            )
        return
    if local is None:
        raise BaseModelMismatch(
            f"the job trains a part of base model {expected.name!r} (sha256 {expected.sha256}) but the task's "
            "model has no frozen base (wrap it in TrainableSubset or PeftAdapters)"
        )
    if local.sha256 != expected.sha256:
        raise BaseModelMismatch(
            f"your local base model {local.name!r} has sha256 {local.sha256}; the job's base model "
            f"{expected.name!r} has {expected.sha256}: refusing to train on another base model (nothing was sent)"
        )


def _chosen_names(params: Mapping[str, torch.nn.Parameter], trainable: Iterable[str] | NameFilter) -> set[str]:
    if callable(trainable):
        chosen = {n for n in params if trainable(n)}
    else:
        chosen = set(trainable)
        unknown = sorted(chosen - params.keys())
        if unknown:
            raise TaskError(f"trainable: {', '.join(unknown)} are not parameters of the model")
    if not chosen:
        raise TaskError("trainable: no parameter of the model was chosen to train (the job would move nothing)")
    return chosen


def _register(root: torch.nn.Module, name: str, param: torch.nn.Parameter) -> None:
    """Register `param` under its dotted `name` in child modules of `root` (the same object: no copy)."""
    *path, leaf = name.split(".")
    owner = root
    try:
        for part in path:
            child = owner._modules.get(part)
            if child is None:
                child = torch.nn.Module()
                owner.add_module(part, child)
            owner = child
        owner.register_parameter(leaf, param)
    except (KeyError, TypeError) as exc:
        raise TaskError(f"trainable parameter {name!r} cannot be registered: {exc}") from None

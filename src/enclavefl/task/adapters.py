"""Parameter-efficient fine-tuning: peft adapters (LoRA, ...) travel, the base model stays frozen with each owner.

    from peft import LoraConfig
    TASK = TorchTask(
        model_factory=PeftAdapters(
            base_model=lambda: LlamaForCausalLM.from_pretrained("/models/base", local_files_only=True),
            config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
            base_name="my-llama-base",
        ),
        loss_fn=causal_lm_loss,                  # data: x = token ids (N, T), y = the next tokens (N, T)
    )

`PeftAdapters()` builds the base model, takes its weights digest (the job's `[base_model] sha256`), wraps it with
peft and returns a `TrainableSubset` whose state_dict is the adapters alone: the job's model schema, the only
tensors that cross the wire. Needs `peft` (`pip install 'enclavefl[llm]'`); importing this module does not.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from enclavefl.errors import TaskError
from enclavefl.task.subset import TrainableSubset, base_model_spec

IGNORE_INDEX = -100  # a target position that does not count (padding), as in PyTorch and transformers


@dataclass(frozen=True, slots=True, kw_only=True)
class PeftAdapters:
    """A model factory: `base_model()` wrapped by peft with `config`; only the adapters train and travel."""

    base_model: Callable[[], torch.nn.Module]
    config: Any  # a peft.PeftConfig, e.g. peft.LoraConfig(r=8, target_modules=[...])
    base_name: str

    def __call__(self) -> TrainableSubset:
        peft = _peft()
        base = self.base_model()
        # The digest of the plain base, before peft renames its layers (q_proj.weight -> q_proj.base_layer.weight):
        # the same number whoever wraps it, and the one `enclavefl job initial-model` prints.
        spec = base_model_spec(base, name=self.base_name)
        with warnings.catch_warnings():
            # peft 0.21 asks transformers 5 a deprecated question; the owner can do nothing about it, every round
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
            )
            wrapped = peft.get_peft_model(base, copy.deepcopy(self.config))  # peft writes into the config it gets
        adapters = [name for name, p in wrapped.named_parameters() if p.requires_grad]
        return TrainableSubset(wrapped, trainable=adapters, base_name=self.base_name, base_sha256=spec.sha256)


def causal_lm_loss(output: Any, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy. `output`: a model output with `.logits` (N, T, V), or the logits; `targets`:
    the token to predict at each position (N, T), IGNORE_INDEX where none counts."""
    logits = output.logits if hasattr(output, "logits") else output
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def _peft() -> Any:
    try:
        return importlib.import_module("peft")
    except ImportError:
        raise TaskError("PeftAdapters needs peft: pip install 'enclavefl[llm]'") from None

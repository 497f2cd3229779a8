"""The task every data owner runs: LoRA adapters on the attention projections of a small Llama base model.

    enclavefl data-owner run --task task.py:TASK --data alice.safetensors ...   # x: token ids, y: next tokens

The base model is each owner's local copy (`ENCLAVEFL_LORA_BASE`, default `work/base` beside this file, as
`run.py` writes it): loaded from disk, never downloaded, never sent. The job names it by digest, and an owner
whose copy differs is refused before it trains (BaseModelMismatch). Only the adapters train and travel.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing may try the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from peft import LoraConfig
from transformers import LlamaForCausalLM

from enclavefl import PeftAdapters, TorchTask, causal_lm_loss

BASE_DIR_VARIABLE = "ENCLAVEFL_LORA_BASE"
BASE_NAME = "pydoc-llama-base"


def base_dir() -> Path:
    return Path(os.environ.get(BASE_DIR_VARIABLE) or Path(__file__).resolve().parent / "work" / "base")


def load_base() -> torch.nn.Module:
    """The frozen base model from this owner's disk (safetensors and config.json, as `save_pretrained` wrote)."""
    model: torch.nn.Module = LlamaForCausalLM.from_pretrained(base_dir(), local_files_only=True)
    return model


LORA = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
TASK = TorchTask(
    model_factory=PeftAdapters(base_model=load_base, config=LORA, base_name=BASE_NAME), loss_fn=causal_lm_loss
)

"""The frozen base model: a small Llama from a `transformers` configuration, briefly pre-trained here on public text.

    size = SIZES["full"]
    tokenizer = prepare_base(Path("work"), size)   # work/tokenizer.json and work/base/ (config.json, safetensors)

Who builds the base (a model provider, in a real deployment) trains it on public text only: the stdlib's
docstrings. Every data owner gets the same files; `PeftAdapters` in task.py loads them, and the job names their
weights digest. The files are cached: a second run with the same size reuses them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing may try the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from lora_corpus import docstring_corpus, next_token_blocks, train_tokenizer
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True, slots=True)
class Size:
    """Everything that makes the example small (for the test suite) or full (minutes on two cores)."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    length: int  # tokens per training block
    pretrain_steps: int
    pretrain_batch: int
    rounds: int
    local_steps: int
    batch: int
    lr: float
    held_out_blocks: int | None = None  # per owner; None: the whole held-out tenth
    public_chars: int | None = None  # None: every docstring

    def config(self, vocab_size: int) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            max_position_embeddings=self.length,
            tie_word_embeddings=True,
        )


SIZES = {
    "small": Size(
        vocab=512,
        hidden=64,
        layers=2,
        heads=2,
        intermediate=128,
        length=32,
        pretrain_steps=150,
        pretrain_batch=16,
        rounds=3,
        local_steps=5,
        batch=16,
        lr=1e-2,
        held_out_blocks=96,
        public_chars=150_000,
    ),
    "full": Size(
        vocab=2048,
        hidden=128,
        layers=4,
        heads=4,
        intermediate=352,
        length=64,
        pretrain_steps=250,
        pretrain_batch=16,
        rounds=5,
        local_steps=10,
        batch=16,
        lr=5e-3,
    ),
}


def prepare_base(workdir: Path, size: Size, *, say: bool = True) -> Tokenizer:
    """The tokenizer and the pre-trained base model under `workdir` (made once per size, then reused)."""
    stamp = workdir / "base" / "size.json"
    tokenizer_file = workdir / "tokenizer.json"
    if stamp.exists() and json.loads(stamp.read_text()) == asdict(size) and tokenizer_file.exists():
        return Tokenizer.from_file(str(tokenizer_file))
    public = docstring_corpus()
    if size.public_chars is not None:
        public = public[: size.public_chars]
    tokenizer = train_tokenizer(public, vocab_size=size.vocab)
    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(tokenizer_file))
    x, y = next_token_blocks(tokenizer, public, length=size.length)
    if say:
        print(f"base model: pre-training on {x.numel():,} tokens of stdlib docstrings ({size.pretrain_steps} steps)")
    model = pretrain(
        size.config(tokenizer.get_vocab_size()), x, y, steps=size.pretrain_steps, batch=size.pretrain_batch
    )
    model.save_pretrained(workdir / "base")
    stamp.write_text(json.dumps(asdict(size)))
    return tokenizer


def pretrain(config: LlamaConfig, x: torch.Tensor, y: torch.Tensor, *, steps: int, batch: int) -> LlamaForCausalLM:
    """Adam with a cosine schedule over shuffled blocks, from a seeded random initialisation."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, x.shape[0], (batch,), generator=generator)
        logits = model(input_ids=x[idx]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model

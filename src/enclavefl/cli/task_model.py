"""`enclavefl job initial-model`: a task's initial model (the part that travels) and its frozen base model's digest.

    lines = describe_initial_model("task.py:TASK", out=Path("init.safetensors"), seed=0)

The model owner runs the same task the data owners run: what it writes is what the job's model schema and
initial hash commit to, and the base digest it prints is the one each owner's pre-flight recomputes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from enclavefl.core.codec import encode_weights
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.errors import ConfigError, TaskError
from enclavefl.owner.preflight import load_task
from enclavefl.task.subset import TrainableSubset


def describe_initial_model(task_spec: str, *, out: Path, seed: int) -> list[str]:
    """Write the task's travelling weights to `out`; the lines to print (ConfigError leaves on failure)."""
    task = load_task(task_spec)
    torch.manual_seed(seed)
    try:
        model = task.create_model()
    except ConfigError:
        raise
    except Exception as exc:  # user code: one line
        raise TaskError(f"--task {task_spec!r}: create_model() raised {type(exc).__name__}: {exc}") from None
    weights = weights_from_module(model)
    try:
        out.write_bytes(encode_weights(weights))
    except OSError as exc:
        raise ConfigError(f"--out {out}: {exc.strerror or exc}") from None
    lines = [
        f"wrote {out}: {len(weights)} tensors that train and travel ({_size(weights.nbytes)}), weights digest "
        f"{weights.sha256().hex()}"
    ]
    base = getattr(model, "frozen_base", None)
    if base is None:
        lines.append("no frozen base model: the whole model travels (job init needs no --base-model)")
        return lines
    frozen = model.base_nbytes() if isinstance(model, TrainableSubset) else 0
    lines += [
        f"frozen base model {base.name!r} ({_size(frozen)}, never sent): weights digest {base.sha256}",
        f"next: enclavefl job init --model {out} --base-model {base.name}={base.sha256} ...",
    ]
    return lines


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"

"""Write the example's data and initial model: bob.safetensors, alice.safetensors, init.safetensors.

A data owner's file holds exactly two tensors: `x` (inputs, float32, one row per example) and `y` (targets,
same number of rows). The initial model is the model owner's: torch.manual_seed(0), then nn.Linear(2, 1), the
same start as `enclavefl demo`, so this example ends with the demo's final weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from task import model

HERE = Path(__file__).parent


def main(out: Path = HERE) -> None:
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    save_file({"x": x[:2].contiguous(), "y": y[:2].contiguous()}, str(out / "bob.safetensors"))
    save_file({"x": x[2:].contiguous(), "y": y[2:].contiguous()}, str(out / "alice.safetensors"))
    torch.manual_seed(0)
    initial = {name: t.detach().contiguous() for name, t in model().state_dict().items()}
    save_file(initial, str(out / "init.safetensors"))
    print(f"wrote bob.safetensors, alice.safetensors and init.safetensors in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)

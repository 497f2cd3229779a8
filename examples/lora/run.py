"""Federated LoRA fine-tuning of a small language model, end to end on this machine, with nothing downloaded.

    python examples/lora/run.py                       # full size: a few minutes on two cores
    python examples/lora/run.py --size small          # what the test suite runs, in seconds
    python examples/lora/run.py --no-processes        # only the in-process simulation

1. The base model (lora_base.py): a tokenizer and a small Llama pre-trained on stdlib docstrings (public text).
2. Three data owners hold different chapters of the language reference (lora_corpus.py): non-IID private text.
3. Federated LoRA (task.py): only the adapters train and travel; the job names the base model by digest. It runs
   twice: in one process (`enclavefl.simulate`), and as real processes over TLS (a node in a simulated enclave, one
   process per data owner, this process as the model owner).
4. Baselines: each owner fine-tuning alone on its own chapters, and centralised fine-tuning on the union.

It prints held-out perplexity (exp of the mean next-token loss on the held-out tenth of every topic) for each.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: nothing may try the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lora_base import SIZES, Size, prepare_base  # noqa: E402
from lora_corpus import next_token_blocks, owner_corpora  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import enclavefl  # noqa: E402
from enclavefl import ModelWeights, StreamedData, TensorData, TrainConfig  # noqa: E402
from enclavefl.demos.process_federation import run_federation, write_federation_files  # noqa: E402


def _load_task_module() -> object:
    """task.py by its path (another example's `task` module may already be imported under that name)."""
    spec = importlib.util.spec_from_file_location("enclavefl_lora_example_task", HERE / "task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_task = _load_task_module()
TASK: enclavefl.TorchTask = _task.TASK  # type: ignore[attr-defined]
BASE_DIR_VARIABLE: str = _task.BASE_DIR_VARIABLE  # type: ignore[attr-defined]
Table = dict[str, dict[str, float]]  # row (how the adapters were trained) -> column (held-out set) -> perplexity


def main(workdir: Path, *, size: str = "full", processes: bool = True) -> Table:
    chosen = SIZES[size]
    started = time.monotonic()
    tokenizer = prepare_base(workdir, chosen)
    os.environ[BASE_DIR_VARIABLE] = str(workdir / "base")  # task.py's base model, here and in the owners' processes
    texts = owner_corpora()
    train = {o: tensor_data(next_token_blocks(tokenizer, t.train, length=chosen.length)) for o, t in texts.items()}
    held_out = {o: next_token_blocks(tokenizer, t.test, length=chosen.length) for o, t in texts.items()}
    held_out = {o: (x[: chosen.held_out_blocks], y[: chosen.held_out_blocks]) for o, (x, y) in held_out.items()}
    config = TrainConfig(local_steps=chosen.local_steps, batch_size=chosen.batch, lr=chosen.lr, optimizer="adam")

    torch.manual_seed(0)  # the initial adapters, as simulate() makes them (LoRA's B matrices start at zero)
    initial_model = TASK.create_model()
    initial = weights_of(initial_model)
    base = initial_model.frozen_base
    frozen = initial_model.base_nbytes() / 2**20
    print(f"base model {base.name!r}: {frozen:.1f} MiB frozen, weights digest {base.sha256}")
    print(f"adapters: {len(initial)} tensors, {initial.nbytes / 2**10:.1f} KiB: all that travels each round")
    for owner, data in train.items():
        print(f"  {owner}: {len(data)} blocks of {chosen.length} tokens")
    table: Table = {"base model (before)": perplexities(initial_model, held_out)}

    history = enclavefl.simulate(TASK, train, rounds=chosen.rounds, train=config, seed=0)
    assert history.job.base_model == base  # simulate() bound the base model into the job it made
    assert history.job.initial_model_sha256 == initial.sha256().hex()
    table["federated, simulate()"] = perplexities(history.load_model(TASK), held_out)
    if processes:
        final = federate_in_processes(workdir / "processes", history.job, initial, train)
        table["federated, processes over TLS"] = perplexities(model_with(final), held_out)
    for owner, data in train.items():
        table[f"{owner} alone"] = perplexities(train_alone(initial, data, config, chosen.rounds), held_out)
    union = TensorData(x=torch.cat([d.x for d in train.values()]), y=torch.cat([d.y for d in train.values()]))
    steps = dataclasses.replace(config, local_steps=chosen.local_steps * len(train))  # the federation's compute
    table["centralised on the union"] = perplexities(train_alone(initial, union, steps, chosen.rounds), held_out)
    print_table(table, size=chosen, seconds=time.monotonic() - started)
    return table


def federate_in_processes(
    directory: Path, job: enclavefl.JobSpec, initial: ModelWeights, train: Mapping[str, TensorData]
) -> ModelWeights:
    """The same job with every party its own process: `enclavefl node serve` in a simulated enclave, one
    `enclavefl data-owner run --task task.py:TASK` per owner (its own data file and base model), gRPC over TLS."""
    datasets = {o: {"x": d.x.numpy(), "y": d.y.numpy()} for o, d in train.items()}
    files = write_federation_files(directory, job=job, initial=initial, datasets=datasets)
    run = run_federation(
        files,
        task=f"{HERE / 'task.py'}:TASK",
        timeout=1800.0,
        on_line=lambda who, line: print(f"  [{who}] {line}") if "closed" in line or "error" in line.lower() else None,
    )
    return run.final.weights


def train_alone(initial: ModelWeights, data: TensorData, config: TrainConfig, rounds: int) -> torch.nn.Module:
    """The adapters trained on one data set for as many rounds (the optimizer restarts each round, as an owner's)."""
    model = model_with(initial)
    for round_index in range(1, rounds + 1):
        TASK.train(model, data, dataclasses.replace(config, seed=round_index), global_model=None)
    return model


def perplexities(model: torch.nn.Module, held_out: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """exp(mean next-token loss) on each owner's held-out set, in batches, and on all of them together."""
    losses = {}
    for name, (x, y) in held_out.items():
        result = TASK.evaluate(model, StreamedData(dataset=TensorDataset(x, y), eval_batch_size=64))
        losses[name] = (result.loss, result.num_examples)
    total = sum(n for _, n in losses.values())
    everything = sum(loss * n for loss, n in losses.values()) / total  # every block has the same number of tokens
    return {**{name: math.exp(loss) for name, (loss, _) in losses.items()}, "all": math.exp(everything)}


def tensor_data(blocks: tuple[torch.Tensor, torch.Tensor]) -> TensorData:
    return TensorData(x=blocks[0], y=blocks[1])


def weights_of(model: torch.nn.Module) -> ModelWeights:
    return ModelWeights({n: t.detach().numpy().copy() for n, t in model.state_dict().items()})


def model_with(weights: ModelWeights) -> torch.nn.Module:
    model = TASK.create_model()
    model.load_state_dict({n: torch.from_numpy(np.array(a)) for n, a in weights.items()}, strict=True)
    return model


def print_table(table: Table, *, size: Size, seconds: float) -> None:
    columns = list(next(iter(table.values())))
    print(f"\nheld-out perplexity ({size.rounds} rounds x {size.local_steps} local steps; {seconds:.0f} s in all)")
    print(f"{'adapters trained by':32}" + "".join(f"{c:>13}" for c in columns))
    for row, values in table.items():
        print(f"{row:32}" + "".join(f"{values[c]:13.2f}" for c in columns))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--workdir", type=Path, help="where the base model and the parties' files go (default: temp)")
    parser.add_argument("--no-processes", action="store_true", help="skip the run as processes over TLS")
    args = parser.parse_args()
    if args.workdir is not None:
        main(args.workdir, size=args.size, processes=not args.no_processes)
    else:
        with tempfile.TemporaryDirectory(prefix="enclavefl-lora-") as tmp:
            main(Path(tmp), size=args.size, processes=not args.no_processes)

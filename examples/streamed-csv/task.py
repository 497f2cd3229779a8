"""A task that reads its data itself: CSV shards in a directory only the data owner holds, streamed in batches.

    enclavefl data-owner run --task examples/streamed-csv/task.py:TASK --data shards/alice ...
    enclavefl.simulate(TASK, {"bob": "shards/bob", "alice": "shards/alice"}, ...)

Each row is 8 features and a 0/1 label. `CsvShards` is a torch IterableDataset that opens one shard at a time
and yields one row at a time: the owner's memory holds one mini-batch whatever the number of shards.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import IterableDataset

from enclavefl import StreamedData, TorchTask

FEATURES = 8


class CsvShards(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Rows `f0..f7,label` of every `*.csv` in `directory`, in file order, read lazily."""

    def __init__(self, directory: Path) -> None:
        self.shards = sorted(Path(directory).glob("*.csv"))
        if not self.shards:
            raise FileNotFoundError(f"{directory}: no *.csv shards")

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for shard in self.shards:
            with shard.open(newline="") as rows:
                reader = csv.reader(rows)
                next(reader)  # the header
                for row in reader:
                    values = [float(v) for v in row]
                    yield torch.tensor(values[:FEATURES]), torch.tensor(values[FEATURES:])


def model() -> torch.nn.Module:
    return torch.nn.Linear(FEATURES, 1)


def logistic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((logits > 0).float() == labels).float().mean())


def load_shards(directory: Path) -> StreamedData:
    """Runs on the data owner's side: the path never leaves it, nor does a row."""
    return StreamedData(dataset=CsvShards(directory))


TASK = TorchTask(model_factory=model, loss_fn=logistic_loss, metrics={"accuracy": accuracy}, load_data=load_shards)

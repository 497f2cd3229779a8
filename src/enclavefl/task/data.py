"""A data owner's data: in memory (`TensorData`), or streamed in mini-batches from a torch Dataset (`StreamedData`).

    data = StreamedData(dataset=CsvShards("/secure/shards"))   # built on the owner's side, from a path it holds
    TorchTask(model_factory=..., loss_fn=..., load_data=lambda path: StreamedData(dataset=CsvShards(path)))

A `StreamedData` is never read whole: each round iterates a `DataLoader` over the dataset, so the owner's memory
holds one mini-batch (times the loader's prefetch), whatever the data set's size. A map-style Dataset (with
`__len__` and `__getitem__`) is shuffled by a generator seeded from the round; an `IterableDataset` (reading
files in order, say) is read in its own order. Both import without torch and need it when made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from enclavefl.core.job import TrainConfig
from enclavefl.task.optional_torch import require_torch

if TYPE_CHECKING:  # torch is imported where it runs, so that this module (and `help()`) works without it
    import torch
    from torch.utils.data import DataLoader, Dataset

DEFAULT_STREAM_BATCH = 64  # a job without batch_size means full batch; streamed data cannot hold one in memory


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorData:
    """A data owner's examples in memory: inputs and targets with the same first dimension."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        require_torch("enclavefl.TensorData")
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} examples but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamedData:
    """Examples `(x, y)` read in mini-batches from a torch `Dataset` (map-style or iterable), never all at once.

    `num_examples`: what the owner reports per round (weighted FedAvg); default: `len(dataset)` for a map-style
    dataset, else the examples read in the round. `num_workers`: the DataLoader's reader processes.
    """

    dataset: Dataset[Any]
    num_examples: int | None = None
    num_workers: int = 0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        require_torch("enclavefl.StreamedData")

    @property
    def iterable(self) -> bool:
        from torch.utils.data import IterableDataset

        return isinstance(self.dataset, IterableDataset)

    def size(self) -> int | None:
        """The number of examples, when known without reading them."""
        if self.num_examples is not None:
            return self.num_examples
        if self.iterable or not hasattr(self.dataset, "__len__"):
            return None
        return len(self.dataset)

    def loader(self, batch_size: int, *, generator: torch.Generator | None = None) -> DataLoader[Any]:
        """Batches of `batch_size`; shuffled when `generator` is given and the dataset is map-style."""
        from torch.utils.data import DataLoader

        shuffle = generator is not None and not self.iterable
        return DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            num_workers=self.num_workers,
        )

    def first_example(self) -> TensorData:
        """One example, as TensorData (the pre-flight check runs it through the model)."""
        for x, y in self.loader(1):
            return TensorData(x=x, y=y)
        raise ValueError("the dataset is empty")


def streamed_batches(
    data: StreamedData, config: TrainConfig, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The round's batches, read lazily: `local_steps` batches (the data cycled as needed), or whole passes."""
    size = config.batch_size or DEFAULT_STREAM_BATCH
    if config.local_steps is not None:
        steps = 0
        while steps < config.local_steps:
            empty = True
            for batch_x, batch_y in data.loader(size, generator=generator):
                empty = False
                yield batch_x, batch_y
                steps += 1
                if steps == config.local_steps:
                    return
            if empty:
                raise ValueError("the dataset is empty")
        return
    assert config.local_epochs is not None
    for _ in range(config.local_epochs):
        yield from data.loader(size, generator=generator)

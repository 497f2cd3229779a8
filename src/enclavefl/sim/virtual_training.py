"""One virtual owner's local training, wherever it runs (a Ray worker, or this process): data built there, lazily.

    partition = OwnerPartition(count=1000, data=make_owner_data)       # make_owner_data(index) -> that owner's data
    trained = train_virtual_owner(TrainingSpec(task=task, partition=partition, train=job.train), 7, 3, global_bytes)
    trained.payload                      # safetensors bytes of the trained model, as a data owner uploads them

It is DataOwner.train_local + run_round's payload (owner/data_owner.py) without the connection: the model starts
from the round's global model, trains under the owner's per-round seed (round_seed), and the update carries the
mean local loss as `train_loss`. The same job and seeds give the same bytes as an in-process owner's upload
(tests/sim/test_ray_backend.py compares whole federations).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from enclavefl.core.job import TrainConfig
from enclavefl.errors import ConfigError
from enclavefl.task import Task

DataFunction = Callable[[int], Any]  # owner index (0-based) -> that owner's data, as its task takes it


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerPartition:
    """`count` virtual owners whose data is built where each one trains: `data(index)`, index 0..count-1.

    Owners are named `{prefix}-{index:04d}` (or by `names`, one per owner). `data` runs in the worker (a Ray task
    on any machine of the cluster), so it loads or generates that owner's share there; nothing is sent from the
    driver but the index. It must be importable where it runs (a module-level function, not a lambda in __main__
    on a remote cluster)."""

    count: int
    data: DataFunction
    prefix: str = "owner"
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"OwnerPartition: count must be at least 1, got {self.count}")
        if self.names and len(self.names) != self.count:
            raise ConfigError(f"OwnerPartition: {len(self.names)} names for {self.count} owners")
        if len(set(self.owner_names())) != self.count:
            raise ConfigError("OwnerPartition: owner names must be distinct")

    def owner_names(self) -> tuple[str, ...]:
        width = max(4, len(str(self.count - 1)))
        return self.names or tuple(f"{self.prefix}-{i:0{width}d}" for i in range(self.count))

    @staticmethod
    def of(datasets: Mapping[str, Any]) -> OwnerPartition:
        """A partition over data already built (each owner's data then travels to its worker)."""
        values = tuple(datasets.values())
        return OwnerPartition(count=len(values), data=_Indexed(values), names=tuple(datasets))


@dataclass(frozen=True, slots=True)
class _Indexed:
    values: tuple[Any, ...]

    def __call__(self, index: int) -> Any:
        return self.values[index]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSpec:
    """What every virtual owner trains with: the task, the partition of data, the job's training settings."""

    task: Task
    partition: OwnerPartition
    train: TrainConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainedUpdate:
    """One owner's result for one round: the upload's payload and what goes with it."""

    index: int
    round: int
    payload: bytes  # safetensors (core/codec.py), never pickled tensors
    num_examples: int
    losses: tuple[float, ...]

    @property
    def train_loss(self) -> float:
        return sum(self.losses) / len(self.losses) if self.losses else 0.0


def train_virtual_owner(spec: TrainingSpec, index: int, round_index: int, global_model: bytes) -> TrainedUpdate:
    """Build owner `index`'s data and model here, train one round from `global_model`, return the encoded result."""
    from enclavefl.core.codec import decode_weights, encode_weights
    from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
    from enclavefl.owner.data_owner import round_seed
    from enclavefl.owner.preflight import load_owner_data

    name = spec.partition.owner_names()[index]
    data = spec.partition.data(index)
    if isinstance(data, str | os.PathLike):  # a path: read here, where the owner trains
        data = load_owner_data(spec.task, data)
    global_weights = decode_weights(global_model)
    model = spec.task.create_model()
    load_weights_into(model, global_weights)
    start = None  # FedProx's anchor, as DataOwner.train_local builds it
    if spec.train.proximal_mu > 0:
        start = spec.task.create_model()
        load_weights_into(start, global_weights)
    config = dataclasses.replace(spec.train, seed=round_seed(spec.train.seed, name, round_index))
    result = spec.task.train(model, data, config, global_model=start)
    return TrainedUpdate(
        index=index,
        round=round_index,
        payload=encode_weights(weights_from_module(model)),
        num_examples=result.num_examples,
        losses=tuple(float(x) for x in result.losses),
    )

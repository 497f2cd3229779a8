"""Shared by the virtual-owner tests: a small job run in-process (one thread per owner, sim/federation.py) with its
uploads forced into owner order, so that its fold (the node sums in arrival order) is reproducible and comparable."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import torch

from enclavefl import TensorData, TorchTask, TrainConfig
from enclavefl.api.simulation import simulation_job
from enclavefl.core.job import JobSpec
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.sim.federation import FederationResult, run_federation
from enclavefl.sim.virtual_training import OwnerPartition
from enclavefl.task import TrainResult
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy


def small_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).mean()


TASK = TorchTask(model_factory=small_model, loss_fn=squared_error)


def owner_data(index: int) -> TensorData:
    """Owner `index`'s share of a regression problem, generated from its index (the same wherever it runs)."""
    generator = torch.Generator().manual_seed(1000 + index)
    x = torch.randn(16 + index, 4, generator=generator)
    y = (x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])) + 0.1 * index
    return TensorData(x=x, y=y)


def partition(count: int) -> OwnerPartition:
    return OwnerPartition(count=count, data=owner_data)


def initial_model() -> ModelWeights:
    torch.manual_seed(0)
    return weights_from_module(small_model())


def small_job(names: tuple[str, ...], *, rounds: int = 3, clients_per_round: int | None = None) -> JobSpec:
    return simulation_job(
        initial_model(),
        list(names),
        rounds=rounds,
        train=TrainConfig(local_steps=3, lr=0.05),
        clients_per_round=clients_per_round,
    )


def fixed_salts(names: tuple[str, ...]) -> dict[str, Callable[[], bytes]]:
    """Each owner's commitment salts, derived from its name and a counter (both runs draw the same ones)."""

    def salts(name: str) -> Callable[[], bytes]:
        counter = iter(range(1_000_000))
        return lambda: hashlib.sha256(f"{name}/{next(counter)}".encode()).digest()

    return {name: salts(name) for name in names}


class _InTurn:
    """Owner i uploads only after the node holds i contributions: the in-process run's fold is in owner order."""

    def __init__(self, task: TorchTask, turn: int, node: list[AggregatorNode]) -> None:
        self.task, self.turn, self.node = task, turn, node

    def create_model(self) -> torch.nn.Module:
        return self.task.create_model()

    def train(self, model: torch.nn.Module, data: Any, config: TrainConfig, *, global_model: Any) -> TrainResult:
        node = self.node[0]
        while node.node_status().contributions < self.turn and not node.stopped:
            threading.Event().wait(0.005)
        return self.task.train(model, data, config, global_model=global_model)

    def evaluate(self, model: torch.nn.Module, data: Any) -> Any:
        return self.task.evaluate(model, data)


def in_process_in_order(
    job: JobSpec, part: OwnerPartition, tee: TeeBackend, policy: AttestationPolicy
) -> FederationResult:
    names = part.owner_names()
    holder: list[AggregatorNode] = []
    return run_federation(
        job=job,
        task=TASK,
        datasets={name: part.data(i) for i, name in enumerate(names)},
        tasks={name: _InTurn(TASK, i, holder) for i, name in enumerate(names)},  # type: ignore[misc]
        initial_model=initial_model(),
        tee=tee,
        policy=policy,
        salts=fixed_salts(names),
        on_node=holder.append,
    )

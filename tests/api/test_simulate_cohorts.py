"""`simulate(..., clients_per_round=...)`: the enclave draws each round's cohort in a simulation as in a deployment;
without it every owner takes part in every round and the receipts carry no cohort."""

from __future__ import annotations

import pytest
import torch

import enclavefl
from enclavefl import TensorData, TorchTask, TrainConfig

TASK = TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss)


def owners(count: int) -> dict[str, TensorData]:
    return {f"site{i}": TensorData(x=torch.full((3, 2), float(i)), y=torch.ones(3, 1)) for i in range(count)}


@pytest.mark.parametrize("clients_per_round", [2, 0.4])
def test_each_round_takes_the_cohort_the_enclave_drew(clients_per_round: float) -> None:
    history = enclavefl.simulate(
        TASK, owners(5), rounds=3, train=TrainConfig(local_steps=1, lr=0.1), clients_per_round=clients_per_round
    )

    assert history.job.cohort_size == 2 and history.job.min_contributions == 2  # K defaults to the whole cohort
    assert [s.contributions for s in history.rounds] == [2, 2, 2]
    assert all(r.cohort is not None and len(r.cohort) == 2 for r in history.receipts)


def test_without_clients_per_round_every_owner_takes_part_every_round() -> None:
    history = enclavefl.simulate(TASK, owners(3), rounds=2, train=TrainConfig(local_steps=1, lr=0.1))

    assert history.job.cohort_size is None
    assert [s.contributions for s in history.rounds] == [3, 3]
    assert all(r.cohort is None for r in history.receipts)

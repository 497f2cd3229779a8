"""The federation's result equals a plain-PyTorch implementation of the same algorithm (1e-6)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.demos.seed import SEED_TASK, initial_model, run_seed, seed_model, seed_split
from enclavefl.owner.data_owner import round_seed
from enclavefl.sim.federation import run_federation
from enclavefl.task import TensorData, TorchTask
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def reference_fedavg(
    start: torch.nn.Module,
    datasets: Mapping[str, TensorData],
    *,
    rounds: int,
    steps: int,
    lr: float,
    weighted: bool,
    batch_size: int | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Plain PyTorch FedAvg, written independently of enclavefl's roles."""
    global_model = copy.deepcopy(start)
    for r in range(1, rounds + 1):
        states, counts = [], []
        for name, data in datasets.items():
            local = copy.deepcopy(global_model)
            opt = torch.optim.SGD(local.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(round_seed(seed, name, r))
            n = len(data)
            size = n if batch_size is None else batch_size
            order, pos = (torch.randperm(n, generator=gen) if size < n else torch.arange(n)), 0
            for _ in range(steps):
                if pos + size > n:
                    order, pos = torch.randperm(n, generator=gen), 0
                idx = order[pos : pos + size]
                pos += size
                opt.zero_grad()
                loss = ((local(data.x[idx]) - data.y[idx]) ** 2).sum()
                loss.backward()
                opt.step()
            states.append(local.state_dict())
            counts.append(n if weighted else 1)
        total = sum(counts)
        avg = {k: sum(s[k] * (c / total) for s, c in zip(states, counts)) for k in states[0]}
        global_model.load_state_dict(avg)
    return global_model.state_dict()


def test_seed_scenario_equals_plain_pytorch_reference(simulated_platform_dir: Path) -> None:
    result, evaluation = run_seed(seed=0, platform_dir=simulated_platform_dir)

    torch.manual_seed(0)
    expected = reference_fedavg(seed_model(), seed_split(), rounds=10, steps=5, lr=0.1, weighted=False)

    for name, tensor in expected.items():
        assert torch.allclose(torch.from_numpy(result.final_model[name]), tensor, atol=1e-6, rtol=0), name
    assert evaluation.loss < 0.1
    assert [s.contributions for s in result.rounds] == [2] * 10


def test_four_owners_unequal_sizes_weighted_equals_reference(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    gen = torch.Generator().manual_seed(7)
    true_w = torch.tensor([[1.5, -2.0, 0.5]])
    datasets = {}
    for name, n in [("a", 3), ("b", 8), ("c", 15), ("d", 30)]:
        x = torch.randn(n, 3, generator=gen)
        datasets[name] = TensorData(x=x, y=x @ true_w.T + 0.1 * torch.randn(n, 1, generator=gen))
    torch.manual_seed(3)
    start = torch.nn.Linear(3, 1)
    initial = weights_from_module(start)
    job = JobSpec(
        name="four-owners",
        rounds=6,
        train=TrainConfig(local_steps=4, lr=0.01, batch_size=2, seed=11),
        strategy=StrategySpec(name="fedavg", params={"weighted": True}),
        min_contributions=4,
        data_owners=tuple(DataOwnerSpec(name=n) for n in datasets),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    task = TorchTask(model_factory=lambda: torch.nn.Linear(3, 1), loss_fn=SEED_TASK.loss_fn)
    tee, policy = sim_enclave

    result = run_federation(job=job, task=task, datasets=datasets, initial_model=initial, tee=tee, policy=policy)

    expected = reference_fedavg(start, datasets, rounds=6, steps=4, lr=0.01, weighted=True, batch_size=2, seed=11)
    for name, tensor in expected.items():
        assert torch.allclose(torch.from_numpy(result.final_model[name]), tensor, atol=1e-6, rtol=0), name
    # weighting matters: the unweighted mean lands elsewhere
    unweighted = reference_fedavg(start, datasets, rounds=6, steps=4, lr=0.01, weighted=False, batch_size=2, seed=11)
    assert not torch.allclose(torch.from_numpy(result.final_model["weight"]), unweighted["weight"], atol=1e-4)


def test_initial_model_is_deterministic_under_seed() -> None:
    a, b = initial_model(5), initial_model(5)
    assert a.sha256() == b.sha256()
    assert a.sha256() != initial_model(6).sha256()

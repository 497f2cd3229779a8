"""simulate(backend="ray"): owners' rounds as Ray tasks, the real node here. Skips without the ray extra."""

from __future__ import annotations

from typing import Any

import pytest
from equal_runs import TASK, fixed_salts, in_process_in_order, initial_model, owner_data, partition, small_job

import enclavefl
from enclavefl import TrainConfig
from enclavefl.errors import TaskError
from enclavefl.sim.ray_trainer import RayTrainer
from enclavefl.sim.virtual_federation import run_virtual_federation
from enclavefl.sim.virtual_owners import RoundProgress
from enclavefl.sim.virtual_training import OwnerPartition, TrainingSpec
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

pytest.importorskip("ray", reason="needs the ray extra: pip install 'enclavefl[ray]'")
pytestmark = pytest.mark.slow  # Ray starts a cluster of worker processes (12 s here): `make test-fast` skips them


def test_ray_equals_the_in_process_backend(local_ray: Any, sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> None:
    """Six owners trained as Ray tasks give the in-process federation's final model and receipts, byte for byte."""
    tee, policy = sim_enclave
    part = partition(6)
    names = part.owner_names()
    job = small_job(names)
    trainer = RayTrainer(TrainingSpec(task=TASK, partition=part, train=job.train), max_in_flight=3)

    on_ray, _ = run_virtual_federation(
        job=job,
        names=names,
        trainer=trainer,
        initial_model=initial_model(),
        tee=tee,
        policy=policy,
        salts=fixed_salts(names),
    )
    trainer.close()  # the session's Ray stays up: this trainer did not start it
    threads = in_process_in_order(job, part, tee, policy)

    assert on_ray.final is not None and threads.final is not None
    assert on_ray.final.weights.sha256() == threads.final.weights.sha256()
    assert [r.canonical_bytes() for r in on_ray.final.receipts] == [r.canonical_bytes() for r in threads.final.receipts]
    assert local_ray.is_initialized()


def test_simulate_on_ray_with_a_cohort(local_ray: Any) -> None:
    """The public call: 8 virtual owners whose data is built in the workers, 2 drawn per round by the enclave."""
    progress: list[RoundProgress] = []
    history = enclavefl.simulate(
        TASK,
        OwnerPartition(count=8, data=owner_data),
        rounds=3,
        train=TrainConfig(local_steps=2, lr=0.05),
        clients_per_round=2,
        backend="ray",
        on_progress=progress.append,
    )
    assert len(history.rounds) == 3 and history.job.clients_per_round == 2
    assert [r.contributions for r in history.receipts] == [2, 2, 2]
    assert all(r.cohort is not None and len(r.cohort) == 2 for r in history.receipts)
    assert [(p.trained, p.accepted, p.refused) for p in progress] == [(2, 2, 0)] * 3
    assert all(loss is not None for loss in history.metric("train_loss"))
    assert history.final_model.sha256() == history.receipts[-1].global_model_sha256


def broken_data(index: int) -> Any:
    if index == 1:
        raise ValueError("no such shard")
    return owner_data(index)


def test_an_owner_whose_task_raises_stops_the_run_with_its_name(local_ray: Any) -> None:
    with pytest.raises(TaskError, match=r"owner-0001: round 1: training raised ValueError: no such shard"):
        enclavefl.simulate(TASK, OwnerPartition(count=3, data=broken_data), rounds=1, backend="ray")


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(enclavefl.errors.ConfigError, match="backend must be one of inprocess, ray"):
        enclavefl.simulate(TASK, {"a": owner_data(0)}, backend="dask")

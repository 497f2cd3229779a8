"""A node refuses, at submission, a job whose rounds would not fit in its memory limit."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.strategies import check_job_memory
from enclavefl.errors import MemoryBudgetExceeded
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

MODEL = ModelWeights({"w": np.zeros(250_000, np.float32)})  # 1 MB


def job(strategy: StrategySpec, owners: int = 10) -> JobSpec:
    return JobSpec(
        name="memory",
        rounds=1,
        train=TrainConfig(local_steps=1),
        strategy=strategy,
        min_contributions=1,
        data_owners=tuple(DataOwnerSpec(name=f"o{i}") for i in range(owners)),
        model_schema=MODEL.schema,
        initial_model_sha256=MODEL.sha256().hex(),
    )


def test_streaming_fedavg_needs_the_same_memory_for_any_number_of_owners() -> None:
    small = check_job_memory(job(StrategySpec(name="fedavg"), owners=2), 1 << 30)
    large = check_job_memory(job(StrategySpec(name="fedavg"), owners=200), 1 << 30)
    assert small == large


def test_robust_rule_memory_grows_with_owners_and_is_refused_over_the_limit() -> None:
    median = StrategySpec(name="median", params={})
    need = check_job_memory(job(median, owners=10), 1 << 30)

    assert need >= 11 * MODEL.nbytes
    with pytest.raises(MemoryBudgetExceeded, match="holds every update"):
        check_job_memory(job(median, owners=10), 5 * MODEL.nbytes)


def test_node_refuses_the_job_before_serving(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> None:
    with pytest.raises(MemoryBudgetExceeded, match="over the node's limit"):
        AggregatorNode(
            job=job(StrategySpec(name="median", params={})), tee=sim_enclave[0], memory_limit_bytes=4 * MODEL.nbytes
        )

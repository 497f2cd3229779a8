"""A data owner's first round is no slower than the others, and FedProx's anchor model exists only with FedProx.

The warm-up (task/api.py warm_up, run by data_owner_main before joining) trains one step on a throwaway model:
afterwards a round imports nothing new (the first optimizer imports torch._dynamo, ~800 modules), and the
owner's training is unchanged (torch's global random state is restored).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import TaskError
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_main import DataOwnerSetup, warm
from enclavefl.task import TensorData, TorchTask
from enclavefl.task.api import warm_up
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

SRC = Path(__file__).resolve().parents[2] / "src"
INITIAL = ModelWeights({"weight": np.zeros((1, 2), np.float32), "bias": np.zeros(1, np.float32)})
DATA = TensorData(x=torch.ones(4, 2), y=torch.ones(4, 1))

_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import torch
    from enclavefl.core.job import TrainConfig
    from enclavefl.task import TensorData, TorchTask
    from enclavefl.task.api import warm_up

    task = TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss)
    data = TensorData(x=torch.ones(4, 2), y=torch.ones(4, 1))
    config = TrainConfig(local_steps=5, lr=0.1)
    if sys.argv[1] == "warm":
        warm_up(task, data, config)
    before = set(sys.modules)
    task.train(task.create_model(), data, config, global_model=None)  # round 1
    print(json.dumps(sorted(set(sys.modules) - before)))
    """
)


def _round_one_imports(mode: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, mode], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_after_the_warm_up_round_one_imports_nothing() -> None:
    cold, warmed = _round_one_imports("cold"), _round_one_imports("warm")

    assert len(cold) > 50  # the control: without it, round 1 pays for imports (torch._dynamo, today)
    assert warmed == []


def _task() -> TorchTask:
    return TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss)


def test_the_warm_up_leaves_torch_random_state_unchanged() -> None:
    config = TrainConfig(local_steps=3, lr=0.1)
    torch.manual_seed(7)
    state = torch.get_rng_state()

    warm_up(_task(), DATA, config)

    assert torch.equal(torch.get_rng_state(), state)


def test_a_task_whose_training_fails_stops_before_joining() -> None:
    def broken(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("loss of the wrong shape")

    setup = DataOwnerSetup(
        address="127.0.0.1:1",
        name="alice",
        job=_job(TrainConfig(local_steps=1)),
        policy=AttestationPolicy.strict(),
        credentials=OwnerCredentials.generate("alice"),
        task=TorchTask(model_factory=_task().model_factory, loss_fn=broken),
        data=DATA,
    )
    lines: list[str] = []

    with pytest.raises(TaskError, match="loss of the wrong shape"):
        warm(setup, lines.append)
    assert lines == []


def test_warm_says_so_in_the_log() -> None:
    setup = DataOwnerSetup(
        address="127.0.0.1:1",
        name="alice",
        job=_job(TrainConfig(local_steps=1)),
        policy=AttestationPolicy.strict(),
        credentials=OwnerCredentials.generate("alice"),
        task=_task(),
        data=DATA,
    )
    lines: list[str] = []

    warm(setup, lines.append)

    assert len(lines) == 1 and lines[0].startswith("[alice] warmed up before joining: one training step")


# --- FedProx's anchor ------------------------------------------------------------------------
class FakeNode:
    def global_model_bytes(self, round_index: int) -> bytes:
        return encode_weights(INITIAL)

    def upload_update(self, message: UpdateMessage) -> bytes:
        return b""


def _job(train: TrainConfig) -> JobSpec:
    return JobSpec(
        name="t",
        rounds=1,
        train=train,
        min_contributions=1,
        strategy=StrategySpec(name="fedavg", params={}),
        data_owners=(DataOwnerSpec(name="alice", certificate_pem=""),),
        model_schema=INITIAL.schema,
    )


@pytest.mark.parametrize(("mu", "models_per_round"), [(0.0, 0), (0.5, 1)], ids=["fedavg", "fedprox"])
def test_the_anchor_model_is_built_only_with_fedprox(mu: float, models_per_round: int) -> None:
    built: list[torch.nn.Module] = []

    def counted() -> torch.nn.Module:
        built.append(torch.nn.Linear(2, 1))
        return built[-1]

    task = TorchTask(model_factory=counted, loss_fn=torch.nn.functional.mse_loss)
    owner = DataOwner(
        name="alice",
        task=task,
        data=DATA,
        job=_job(dataclasses.replace(TrainConfig(local_steps=2), proximal_mu=mu)),
    )
    # attestation is not what this test is about: the owner acts through a node it is told is attested
    owner.use(AttestedNode(client=FakeNode(), verified=object(), node_public_key_pem=b""))  # type: ignore[arg-type]
    at_start = len(built)

    owner.run_round(1)
    owner.run_round(2)

    assert len(built) - at_start == 2 * models_per_round

"""A large model's download and upload each get a line before and after; a small one stays quiet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.data_owner import DataOwner
from enclavefl.task import TensorData, TorchTask

INITIAL = ModelWeights({"weight": np.zeros((1, 2), np.float32), "bias": np.zeros(1, np.float32)})


class FakeNode:
    def __init__(self) -> None:
        self.uploads: list[UpdateMessage] = []

    def global_model_bytes(self, round_index: int) -> bytes:
        return encode_weights(INITIAL)

    def upload_update(self, message: UpdateMessage) -> bytes:
        self.uploads.append(message)
        return b""


def _owner(lines: list[str], *, large_transfer_bytes: int) -> tuple[DataOwner, FakeNode]:
    job = JobSpec(
        name="t",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=1,
        strategy=StrategySpec(name="fedavg", params={}),
        data_owners=(DataOwnerSpec(name="alice", certificate_pem=""),),
        model_schema=INITIAL.schema,
    )
    node = FakeNode()
    owner = DataOwner(
        name="alice",
        task=TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=torch.nn.functional.mse_loss),
        data=TensorData(x=torch.ones(2, 2), y=torch.ones(2, 1)),
        job=job,
        report=lines.append,
        large_transfer_bytes=large_transfer_bytes,
    )
    # attestation is not what this test is about: the owner acts through a node it is told is attested
    owner.use(AttestedNode(client=node, verified=object(), node_public_key_pem=b""))  # type: ignore[arg-type]
    return owner, node


@pytest.mark.parametrize("threshold", [1, 10**9], ids=["large", "small"])
def test_transfers_of_a_large_model_are_announced_and_timed(threshold: int) -> None:
    lines: list[str] = []
    owner, node = _owner(lines, large_transfer_bytes=threshold)

    owner.run_round(1)

    transfers = [line for line in lines if "downloading" in line or "uploading" in line]
    assert len(node.uploads) == 1
    if threshold == 1:
        assert transfers[0] == "[alice] round 1: downloading the global model (0.0 MiB)..."
        assert transfers[1].startswith("[alice] round 1: downloading the global model done in ")
        assert transfers[2].startswith("[alice] round 1: uploading the update (")
        assert "uploading the update done in" in transfers[3] and transfers[3].endswith("MiB/s)")
    else:
        assert transfers == []

"""Issue 25 item 5 over real gRPC/TLS: a data owner downloads the global model the node reads back from its sealed
checkpoint, and a host that edits that file is caught, with the chunk named, instead of serving altered bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import open_checkpoint_store
from enclavefl.enclave.node import AggregatorNode
from enclavefl.errors import CheckpointError
from enclavefl.owner.attested import connect_data_owner
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(120)]


def test_a_download_reads_the_sealed_checkpoint_and_a_host_edit_is_refused(
    tmp_path: Path, sim_enclave: tuple[TeeBackend, AttestationPolicy]
) -> None:
    tee, policy = sim_enclave
    alice = OwnerCredentials.generate("alice")
    initial = ModelWeights({"w": np.arange(600_000, dtype=np.float32)})  # 2.4 MB: five sealed chunks
    job = JobSpec(
        name="download-from-checkpoint",
        rounds=2,
        train=TrainConfig(local_steps=1),
        min_contributions=1,
        round_deadline_seconds=60.0,
        data_owners=(DataOwnerSpec(name="alice", certificate_pem=alice.certificate_pem.decode()),),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    store = open_checkpoint_store(tmp_path / "state", tee=tee, job_digest=job.digest())
    node = AggregatorNode(job=job, tee=tee, initial_model=initial, checkpoints=store)
    node.serve_grpc()
    node.start()
    try:
        owner = connect_data_owner(node.address, name="alice", job=job, policy=policy, credentials=alice)
        deadline = time.monotonic() + 30
        while node.node_status().phase is not RoundPhase.OPEN:
            assert time.monotonic() < deadline, "round 1 never opened"
            time.sleep(0.05)
        assert not node._require_worker()._global.resident  # the round holds no copy: the download reads the disk
        assert bytes(owner.client.global_model_bytes(1)) == encode_weights(initial)

        path = store.list()[-1]
        with path.open("r+b") as f:  # the host flips a byte in the model's fourth chunk
            f.seek(3 * (512 << 10) + 1000)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
        with pytest.raises(CheckpointError, match=r"round 0 changed on disk: .*chunk 3 of 5 .*fails authentication"):
            owner.client.global_model_bytes(1)
        assert node.node_status().phase is RoundPhase.OPEN  # the node and the round go on
        owner.client.close()
    finally:
        node.stop(0)

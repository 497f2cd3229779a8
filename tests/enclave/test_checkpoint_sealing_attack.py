"""Issue 10 §3: an operator's own enclave, signed with the same key, cannot open the node's sealed state.

The operator holds the enclave signing key, so it can build and sign "its own enclave": same platform, same
MRSIGNER, another MRENCLAVE. If checkpoints were sealed to MRSIGNER, that enclave would derive the same
sealing key, unseal the checkpoint and read the node's identity key (TLS and receipt signing). Sealed to
MRENCLAVE, it derives another key and the checkpoint does not open.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import SEALING_KEY_NAME, open_checkpoint_store
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CheckpointError, SealingError
from enclavefl.tee.insecure import InsecureSimulationBackend, SimulatedPlatform, measure_aggregator_code
from enclavefl.tee.inside.seal import unseal

pytestmark = pytest.mark.filterwarnings("ignore")


def model(value: float) -> ModelWeights:
    return ModelWeights({"w": np.full((2, 2), value, np.float32)})


def a_job() -> JobSpec:
    initial = model(0.0)
    return JobSpec(
        name="sealed",
        rounds=3,
        train=TrainConfig(local_steps=1),
        min_contributions=1,
        data_owners=(DataOwnerSpec(name="a"),),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )


def backend(platform_dir: Path, mrenclave: bytes | None = None) -> InsecureSimulationBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSimulationBackend(SimulatedPlatform.load_or_create(platform_dir), mrenclave=mrenclave)


def genuine_node_state(platform_dir: Path, state: Path) -> bytes:
    """Run one round on the genuine enclave with a real checkpoint store; returns its identity key (DER)."""
    job = a_job()
    genuine = backend(platform_dir)
    store = open_checkpoint_store(state, tee=genuine, job_digest=job.digest())
    worker = SecureWorker(job=job, initial_model=model(0.0), checkpoint_sink=store.save)
    worker.open_round()
    worker.submit_update(
        UpdateMessage.of(owner="a", round=1, num_examples=1, payload=encode_weights(model(1.0))).incoming()
    )
    worker.close_round()
    assert store.list(), "the genuine node sealed no checkpoint"
    return worker.identity.private_der()


def test_checkpoints_are_sealed_to_mrenclave() -> None:
    assert SEALING_KEY_NAME == "_sgx_mrenclave"


def test_an_operator_enclave_of_the_same_signer_cannot_open_the_checkpoint(
    simulated_platform_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    identity_der = genuine_node_state(simulated_platform_dir, state)
    job = a_job()
    # The operator signs its own code with the node's signing key: same platform, same MRSIGNER.
    operator = backend(simulated_platform_dir, mrenclave=hashlib.sha256(b"operator's key-dumping enclave").digest())
    genuine = backend(simulated_platform_dir)
    assert operator.identity.mrsigner == genuine.identity.mrsigner
    assert operator.identity.mrenclave != genuine.identity.mrenclave == measure_aggregator_code()

    # Through the node's own loader: refused, nothing loaded.
    with pytest.raises(CheckpointError, match="does not open for this job and enclave"):
        open_checkpoint_store(state, tee=operator, job_digest=job.digest()).load_latest()

    # By hand, with every key the operator's enclave can derive: none opens the blob.
    blob = sorted(state.glob("checkpoint-*.sealed"))[-1].read_bytes()
    label = f"enclavefl/checkpoint/v1/{job.digest().hex()}"
    for key_name in ("_sgx_mrenclave", "_sgx_mrsigner"):
        with pytest.raises(SealingError, match="fails authentication"):  # chunked (seal version 2): chunk 0 fails
            unseal(operator.sealing_key(key_name), blob, label=label)
    assert identity_der not in blob

    # The genuine enclave, restarted, still resumes with the same identity key.
    resumed = open_checkpoint_store(state, tee=backend(simulated_platform_dir), job_digest=job.digest()).load_latest()
    assert resumed is not None and resumed.identity_key_der == identity_der


def test_a_new_build_cannot_resume_the_old_build_s_job(simulated_platform_dir: Path, tmp_path: Path) -> None:
    """The price of MRENCLAVE sealing: an upgraded enclave (even an honest one) starts no resume; it refuses."""
    state = tmp_path / "state"
    genuine_node_state(simulated_platform_dir, state)
    upgraded = backend(simulated_platform_dir, mrenclave=hashlib.sha256(b"aggregator v2").digest())

    with pytest.raises(CheckpointError, match="refusing to resume"):
        open_checkpoint_store(state, tee=upgraded, job_digest=a_job().digest()).load_latest()

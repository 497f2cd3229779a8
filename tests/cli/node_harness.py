"""In-process pieces for the CLI tests: a job on disk, owners' keys, a policy file, a node in a thread."""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.host.node_tee import write_simulation_policy
from enclavefl.owner.attested import connect_data_owner
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

OWNERS = ("alice", "bob")


def model(value: float = 0.0) -> ModelWeights:
    return ModelWeights({"weight": np.full((1, 2), value, np.float32), "bias": np.full((1,), value, np.float32)})


@dataclasses.dataclass
class Workspace:
    directory: Path
    job: JobSpec
    job_file: Path
    policy_file: Path
    model_file: Path
    keys: dict[str, tuple[Path, Path]]  # name -> (key, cert); "model-owner" included
    tee: TeeBackend
    policy: AttestationPolicy

    def credentials(self, name: str) -> OwnerCredentials:
        return OwnerCredentials.load(*self.keys[name])

    def node(self, **kwargs: object) -> AggregatorNode:
        network = {k: kwargs.pop(k) for k in ("host", "port", "chunk_bytes", "max_workers", "limits") if k in kwargs}
        node = AggregatorNode(job=self.job, tee=self.tee, **kwargs)  # type: ignore[arg-type]
        return node.serve_grpc(**network).start()  # type: ignore[arg-type]

    def with_job(self, **changes: object) -> Workspace:
        job = dataclasses.replace(self.job, **changes)  # type: ignore[arg-type]
        self.job_file.write_text(dump_job(job))
        return dataclasses.replace(self, job=job)


def make_workspace(directory: Path, platform_dir: Path, sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> Workspace:
    keys: dict[str, tuple[Path, Path]] = {}
    for name in (*OWNERS, "model-owner"):
        keys[name] = (directory / f"{name}.key", directory / f"{name}.pem")
        OwnerCredentials.generate(name).save(*keys[name])
    initial = model(0.0)
    job = JobSpec(
        name="cli-test",
        rounds=2,
        train=TrainConfig(local_steps=1),
        min_contributions=2,
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        round_deadline_seconds=30.0,
        data_owners=tuple(DataOwnerSpec(name=n, certificate_pem=keys[n][1].read_text()) for n in OWNERS),
        model_owner_certificate_pem=keys["model-owner"][1].read_text(),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    (directory / "job.toml").write_text(dump_job(job))
    (directory / "init.safetensors").write_bytes(encode_weights(initial))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_simulation_policy(platform_dir, directory / "policy.toml")
    tee, policy = sim_enclave
    return Workspace(
        directory=directory,
        job=job,
        job_file=directory / "job.toml",
        policy_file=directory / "policy.toml",
        model_file=directory / "init.safetensors",
        keys=keys,
        tee=tee,
        policy=policy,
    )


@pytest.fixture
def workspace(
    tmp_path: Path, simulated_platform_dir: Path, sim_enclave: tuple[TeeBackend, AttestationPolicy]
) -> Workspace:
    return make_workspace(tmp_path, simulated_platform_dir, sim_enclave)


def numpy_owner(
    ws: Workspace, address: str, name: str, value: float, *, train_seconds: float = 0.0
) -> Callable[[], None]:
    """A data owner without torch: attest, join, and upload a constant model every round (after `train_seconds`
    of pretended local training: a real owner's round is not instantaneous)."""

    def run() -> None:
        node = connect_data_owner(address, name=name, job=ws.job, policy=ws.policy, credentials=ws.credentials(name))
        done: set[int] = set()
        signed: set[int] = set()
        status = None
        while True:
            status = node.client.node_status(seen=status, wait_seconds=2.0)  # long poll: answers on a change
            if status.job_state.value in ("finished", "failed"):
                return
            if status.phase.value == "open" and status.round not in done:
                done.add(status.round)
                time.sleep(train_seconds)
                node.client.upload_update(
                    UpdateMessage.of(
                        owner=name, round=status.round, num_examples=1, payload=encode_weights(model(value))
                    )
                )
            if status.phase.value == "signing" and status.round not in signed:  # the second phase: sign it back
                pending = node.client.pending_receipt()
                verify_receipt(pending, node.node_public_key_pem)
                key = ws.credentials(name).private_key
                node.client.acknowledge(sign_acknowledgement(key, owner=name, receipt=pending))
                signed.add(status.round)

    return run


def in_threads(*targets: Callable[[], None]) -> Iterator[threading.Thread]:
    for target in targets:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        yield thread


__all__ = ["Workspace", "in_threads", "make_workspace", "model", "numpy_owner", "run_data_owner", "workspace"]

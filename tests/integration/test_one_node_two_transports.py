"""One node for simulation and deployment: the same job through the in-memory transport and through real gRPC/TLS on
loopback ends with equal final weights and equal receipt bodies.

Both runs drive enclave/node.py's AggregatorNode with the deployment's data-owner loop (owner/data_owner_loop.py)
in threads; only the transport differs. The owners' commitment salts are random per upload in production; here
each owner draws them from an injected, deterministic source so that the receipts (which list the salted
commitments) can be compared byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
import time
from collections.abc import Callable

import pytest
import torch

from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.attested import AttestedNode, attest_node, connect_data_owner
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import DataOwnerReport, run_data_owner
from enclavefl.owner.model_owner import FinalModel, ModelOwnerSession
from enclavefl.task import TensorData, TorchTask
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.inmemory import InMemoryClient
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(300)]
# Two contributors: FedAvg's fold then adds two products to zero, so arrival order cannot change a bit of the sum.
OWNERS = ("alice", "bob")
ROUNDS = 3


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1)


TASK = TorchTask(model_factory=make_model, loss_fn=torch.nn.functional.mse_loss)
DATA = {
    "alice": TensorData(x=torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), y=torch.tensor([[1.0], [2.0], [3.0]])),
    "bob": TensorData(x=torch.tensor([[2.0, 1.0], [0.0, 3.0]]), y=torch.tensor([[4.0], [3.0]])),
}


def counter_salts(name: str) -> Callable[[], bytes]:
    """A deterministic stand-in for os.urandom(32): the test injects the owners' randomness."""
    counter = itertools.count()
    return lambda: hashlib.sha256(f"{name}/{next(counter)}".encode()).digest()


@dataclasses.dataclass(frozen=True)
class Setup:
    job: JobSpec
    initial: ModelWeights
    owners: dict[str, OwnerCredentials]
    model_owner: OwnerCredentials
    tee: TeeBackend
    policy: AttestationPolicy


@pytest.fixture
def setup(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> Setup:
    tee, policy = sim_enclave
    owners = {name: OwnerCredentials.generate(name) for name in OWNERS}
    model_owner = OwnerCredentials.generate("model-owner")
    initial = weights_from_module(make_model())
    job = JobSpec(
        name="two-transports",
        rounds=ROUNDS,
        train=TrainConfig(local_steps=3, lr=0.1),
        min_contributions=2,
        round_deadline_seconds=60.0,
        data_owners=tuple(DataOwnerSpec(name=n, certificate_pem=c.certificate_pem.decode()) for n, c in owners.items()),
        model_owner_certificate_pem=model_owner.certificate_pem.decode(),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    return Setup(job=job, initial=initial, owners=owners, model_owner=model_owner, tee=tee, policy=policy)


def run_job(setup: Setup, *, transport: str) -> tuple[FinalModel, dict[str, DataOwnerReport]]:
    """The whole job on a fresh node, its owners reaching it through `transport` ("inmemory" or "grpc")."""
    job, now = setup.job, int(time.time())
    node = AggregatorNode(job=job, tee=setup.tee, initial_model=setup.initial)
    if transport == "grpc":
        node.serve_grpc()
    node.start()

    def attested(name: str) -> AttestedNode:
        if transport == "grpc":
            return connect_data_owner(
                node.address, name=name, job=job, policy=setup.policy, credentials=setup.owners[name]
            )
        client = InMemoryClient(node, caller=name)
        in_memory = attest_node(client, job=job, policy=setup.policy, now=now)
        return dataclasses.replace(in_memory, signing_key=setup.owners[name].private_key)

    reports: dict[str, DataOwnerReport] = {}

    def run(name: str) -> None:
        owner = DataOwner(name=name, task=TASK, data=DATA[name], job=job, salts=counter_salts(name))
        reports[name] = run_data_owner(owner, attested(name))

    try:
        threads = [threading.Thread(target=run, args=(name,)) for name in OWNERS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert node.wait(120).job_state.value == "finished"
        if transport == "grpc":
            session = ModelOwnerSession.connect(
                node.address, job=job, policy=setup.policy, credentials=setup.model_owner
            )
        else:
            session = ModelOwnerSession(
                attest_node(InMemoryClient(node), job=job, policy=setup.policy, now=now), job=job
            )
        final = session.download_final()  # verified: the chain's signatures and the model's hash
        session.close()
    finally:
        node.stop(0)
    return final, reports


def test_one_job_through_both_transports_gives_equal_weights_and_equal_receipt_bodies(setup: Setup) -> None:
    in_memory, memory_reports = run_job(setup, transport="inmemory")
    over_grpc, grpc_reports = run_job(setup, transport="grpc")

    assert [s.body for s in in_memory.signed] == [s.body for s in over_grpc.signed]
    assert len(in_memory.signed) == ROUNDS
    assert all(r.contributions == len(OWNERS) for r in in_memory.receipts)
    assert in_memory.weights.sha256() == over_grpc.weights.sha256()
    assert in_memory.weights.sha256() != setup.initial.sha256()  # the rounds trained something
    for reports in (memory_reports, grpc_reports):
        assert {n: r.contributed for n, r in reports.items()} == {n: list(range(1, ROUNDS + 1)) for n in OWNERS}
    # the signatures differ (ECDSA draws a fresh nonce, and each node has its own key): only the bodies are equal
    assert [s.signature for s in in_memory.signed] != [s.signature for s in over_grpc.signed]

"""Issue 10 §4 with real training: re-training "D" and "D ∪ {x}" reproduces the update exactly, and still the
receipt does not say which one was used; the owner's salts (persisted before upload) prove its inclusion."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from pathlib import Path

import pytest
import torch

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.receipt_checks import check_update_included
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.update_message import commitment_of_payload
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.attested import attest_node
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.commitment_log import CommitmentLog
from enclavefl.owner.data_owner import DataOwner, round_seed
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.task import EvalResult, TensorData, TrainResult
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.inmemory import InMemoryClient

pytestmark = pytest.mark.filterwarnings("ignore")


class LinearTask:
    """Full-batch gradient descent on nn.Linear(2, 1): deterministic given the start model and the data."""

    def create_model(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Linear(2, 1)

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        losses = []
        for _ in range(config.local_steps):
            model.zero_grad()
            loss = ((model(data.x) - data.y) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    assert p.grad is not None
                    p.sub_(config.lr * p.grad)
            losses.append(float(loss.detach()))
        return TrainResult(num_examples=len(data), losses=tuple(losses))

    def evaluate(self, model: torch.nn.Module, data: TensorData) -> EvalResult:
        raise NotImplementedError


D = TensorData(x=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), y=torch.tensor([[1.0], [2.0], [3.0]]))
X = TensorData(x=torch.tensor([[5.0, -1.0]]), y=torch.tensor([[7.0]]))  # the one record the attacker asks about
D_WITH_X = TensorData(x=torch.cat([D.x, X.x]), y=torch.cat([D.y, X.y]))


def attacker_replay(task: LinearTask, job: JobSpec, data: TensorData) -> bytes:
    """What the attacker computes from public information and a guess of the owner's data."""
    model, start = task.create_model(), task.create_model()
    initial = weights_from_module(task.create_model())
    load_weights_into(model, initial)
    load_weights_into(start, initial)
    config = dataclasses.replace(job.train, seed=round_seed(job.train.seed, "alice", 1))
    task.train(model, data, config, global_model=start)
    return encode_weights(weights_from_module(model))


def test_exact_retraining_of_both_candidates_learns_nothing_from_the_receipt(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], tmp_path: Path
) -> None:
    tee, policy = sim_enclave
    task = LinearTask()
    initial = weights_from_module(task.create_model())
    job = JobSpec(
        name="dictionary",
        rounds=1,
        train=TrainConfig(local_steps=3, lr=0.1),
        min_contributions=2,
        data_owners=(DataOwnerSpec(name="alice"), DataOwnerSpec(name="bob")),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    node = AggregatorNode(job=job, tee=tee, initial_model=initial)
    log = CommitmentLog.open(tmp_path / "alice-state", job_digest=job.digest())
    alice_chain = ReceiptChainView(job_digest=job.digest())
    alice = DataOwner(name="alice", task=task, data=D_WITH_X, job=job, commitment_log=log, chain=alice_chain)
    bob = DataOwner(name="bob", task=task, data=D, job=job)
    for owner in (alice, bob):  # each attests the node before anything is sent
        owner.use(attest_node(InMemoryClient(node, caller=owner.name), job=job, policy=policy, now=int(time.time())))
    node.start()
    try:  # both owners run the deployment's loop through the real node: one round, closed in two phases
        threads = [threading.Thread(target=run_data_owner, args=(o, o.attested())) for o in (alice, bob)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        node.wait(60)
        (receipt,) = (s.receipt for s in node.receipts())
    finally:
        node.stop(0)

    candidate_d, candidate_dx = attacker_replay(task, job, D), attacker_replay(task, job, D_WITH_X)
    # The replay is exact: alice's commitment opens to the D ∪ {x} candidate under her salt. So a receipt of
    # plain payload hashes would have answered the attacker's question.
    assert alice_chain.accepted_updates[1] == commitment_of_payload(
        salt=alice_chain.commitment_salts[1], payload=candidate_dx
    )
    assert candidate_d != candidate_dx
    listed = set(receipt.update_commitments)
    assert hashlib.sha256(candidate_d).digest() not in listed
    assert hashlib.sha256(candidate_dx).digest() not in listed

    # alice checks and, with the salt she persisted before uploading, can prove it after a restart
    check_update_included(receipt, alice_chain.accepted_updates[1])
    (opening,) = CommitmentLog.open(tmp_path / "alice-state", job_digest=job.digest()).openings(1)
    check_update_included(receipt, commitment_of_payload(salt=opening.salt, payload=candidate_dx))

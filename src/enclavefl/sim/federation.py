"""The whole federation in one process: the real node, its data owners as threads, the model owner's session.

    result = run_federation(job=job, task=task, datasets={"bob": b, "alice": a}, initial_model=m, tee=tee,
                            policy=policy)
    result.final.weights, result.summaries, result.final.signed      # verified as the model owner verifies them

Only the transport differs from a deployment (transport/inmemory.py): the node is enclave/node.py's AggregatorNode
with its round loop (deadlines, attempts, two-phase close, masked phases); each data owner attests it and runs
owner/data_owner_loop.py's loop in its own thread, as it would in its own process; the model owner downloads the
final model through owner/model_owner.py's session, which verifies the receipt chain and the model's hash.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.aggregation import AggregationStrategy
from enclavefl.core.clock import Clock, SystemClock
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.update_message import new_commitment_salt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.errors import RoundStateError
from enclavefl.owner.attested import AttestedNode, attest_node
from enclavefl.owner.data_owner import DataOwner, LocalReport
from enclavefl.owner.data_owner_loop import DataOwnerReport, run_data_owner
from enclavefl.owner.model_owner import FinalModel, ModelOwnerSession
from enclavefl.task import Task
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.inmemory import InMemoryClient

RoundCallback = Callable[[RoundSummary], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationResult:
    status: NodeStatus  # the node's at the end: finished, or failed (and why)
    final: FinalModel | None  # the model owner's verified download (None when the job failed)
    summaries: tuple[RoundSummary, ...]
    tee_backend: str
    tee_insecure: bool
    rejections: Mapping[str, int]
    owners: Mapping[str, DataOwnerReport] = field(default_factory=dict)
    node_public_key_pem: bytes = b""  # the attested node key that signs the receipts

    @property
    def final_model(self) -> ModelWeights:
        """The final model; RoundStateError naming the node's reason when the job failed."""
        if self.final is None:
            raise RoundStateError(f"the federation failed: {self.status.job_message}")
        return self.final.weights


def run_federation(
    *,
    job: JobSpec,
    task: Task,
    datasets: Mapping[str, Any],  # each owner's data, as its task takes it
    tasks: Mapping[str, Task] | None = None,  # an owner's own task instead of `task` (e.g. an attacker's)
    initial_model: ModelWeights,
    tee: TeeBackend,
    policy: AttestationPolicy,
    clock: Clock | None = None,
    on_round: RoundCallback | None = None,
    report: LocalReport | None = None,
    signing_keys: Mapping[str, ec.EllipticCurvePrivateKey] | None = None,
    salts: Mapping[str, Callable[[], bytes]] | None = None,
    strategy: AggregationStrategy | None = None,
    on_node: Callable[[AggregatorNode], None] | None = None,
) -> FederationResult:
    """Run every round of `job`; each data owner attests the node before anything else.

    `signing_keys`: the owners' enrolled keys when the job enrolls keys (they sign each round's receipt).
    `salts`: per owner, where its commitment salts come from (default: os.urandom); `strategy`: an injected strategy
    object (reproducible demos). `on_round` hears each released summary from the node's round thread, before the
    next round opens; `on_node` gets the node once it exists (e.g. for federated evaluation in that callback).
    An owner's error (e.g. an AttestationError leaf: nothing was sent) stops the node and is raised here.
    """
    summaries: list[RoundSummary] = []

    def released(summary: RoundSummary) -> None:
        summaries.append(summary)
        if on_round is not None:
            on_round(summary)

    node = AggregatorNode(job=job, tee=tee, initial_model=initial_model, on_round=released, strategy=strategy)
    if on_node is not None:
        on_node(node)
    now = int((clock or SystemClock()).now())
    owners: list[tuple[DataOwner, AttestedNode]] = []
    for name, data in datasets.items():  # each attests before the node starts: nothing is sent to an unverified node
        attested = attest_node(InMemoryClient(node, caller=name), job=job, policy=policy, now=now, clock=clock)
        key = (signing_keys or {}).get(name)
        owner_task = (tasks or {}).get(name, task)
        owner = DataOwner(
            name=name,
            task=owner_task,
            data=data,
            job=job,
            report=report,
            salts=(salts or {}).get(name, new_commitment_salt),
        )
        owners.append((owner, dataclasses.replace(attested, signing_key=key) if key is not None else attested))
    model_owner = ModelOwnerSession(attest_node(InMemoryClient(node), job=job, policy=policy, now=now), job=job)
    reports: dict[str, DataOwnerReport] = {}
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_run_owner, args=(owner, attested, node, reports, errors), name=f"owner-{owner.name}")
        for owner, attested in owners
    ]
    node.start()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        status = node.wait()
        final = model_owner.download_final() if status.job_state is JobState.FINISHED else None
    finally:
        node.stop(0)
    return FederationResult(
        status=status,
        final=final,
        summaries=tuple(summaries),
        tee_backend=tee.name,
        tee_insecure=tee.is_insecure,
        rejections=dict(node.rejections),
        owners=reports,
        node_public_key_pem=model_owner.node.node_public_key_pem,
    )


def _run_owner(
    owner: DataOwner,
    attested: AttestedNode,
    node: AggregatorNode,
    reports: dict[str, DataOwnerReport],
    errors: list[BaseException],
) -> None:
    """One data owner's whole job, as its own process would run it; its first error stops the federation."""
    try:
        reports[owner.name] = run_data_owner(owner, attested)
    except BaseException as exc:
        if not node.stopped:  # the first failure: the others then find the node gone and stop
            errors.append(exc)
            node.stop(0)

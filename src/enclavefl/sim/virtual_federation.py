"""A federation of many virtual owners: the real node here, the owners' training elsewhere (Ray), streamed to it.

    result = run_virtual_federation(job=job, names=partition.owner_names(), trainer=RayTrainer(spec),
                                    initial_model=m, tee=tee, policy=policy)
    result.final.weights, result.summaries               # verified by the model owner's session, as in-process

As in sim/federation.py, only the transport differs from a deployment: the node is enclave/node.py's AggregatorNode
with its round loop, and the model owner downloads the final model through owner/model_owner.py's session (receipt
chain, signatures, the model's hash). The owners attest the node once for all of them (they share this process),
then sim/virtual_owners.py's loop uploads each update as it comes back and signs each sealed receipt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from enclavefl.aggregation import AggregationStrategy
from enclavefl.core.clock import Clock, SystemClock
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.attested import attest_node
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.sim.federation import FederationResult, RoundCallback
from enclavefl.sim.virtual_owners import Progress, Trainer, VirtualOwnersReport, drive_virtual_owners
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState
from enclavefl.transport.inmemory import InMemoryClient


def run_virtual_federation(
    *,
    job: JobSpec,
    names: Sequence[str],
    trainer: Trainer,
    initial_model: ModelWeights,
    tee: TeeBackend,
    policy: AttestationPolicy,
    clock: Clock | None = None,
    on_round: RoundCallback | None = None,
    on_progress: Progress | None = None,
    salts: Mapping[str, Callable[[], bytes]] | None = None,
    strategy: AggregationStrategy | None = None,
) -> tuple[FederationResult, VirtualOwnersReport]:
    """Run every round of `job` whose enrolled owners are `names` (with cohorts, the enclave draws who trains each
    round). Nothing is sent before the node's evidence verified under `policy`."""
    summaries: list[RoundSummary] = []
    lock = threading.Lock()

    def released(summary: RoundSummary) -> None:
        with lock:
            summaries.append(summary)
        if on_round is not None:
            on_round(summary)

    node = AggregatorNode(job=job, tee=tee, initial_model=initial_model, on_round=released, strategy=strategy)
    now = int((clock or SystemClock()).now())
    attested = attest_node(InMemoryClient(node, caller=names[0]), job=job, policy=policy, now=now, clock=clock)
    model_owner = ModelOwnerSession(attest_node(InMemoryClient(node), job=job, policy=policy, now=now), job=job)
    node.start()
    try:
        report = drive_virtual_owners(
            node,
            attested,
            job=job,
            names=names,
            trainer=trainer,
            salts=salts,
            on_progress=on_progress,
        )
        status = node.wait()
        final = model_owner.download_final() if status.job_state is JobState.FINISHED else None
    finally:
        node.stop(0)
    result = FederationResult(
        status=status,
        final=final,
        summaries=tuple(summaries),
        tee_backend=tee.name,
        tee_insecure=tee.is_insecure,
        rejections=dict(node.rejections),
        node_public_key_pem=model_owner.node.node_public_key_pem,
    )
    return result, report

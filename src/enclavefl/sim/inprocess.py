"""The whole federation in one process: a secure worker, data owners and the model owner's loop.

The same roles and messages as a deployment; only the transport is in memory. Rounds close in the same two
phases: the worker seals the round, every data owner records and signs its receipt, then the worker releases it.
A masked job (`[secure_aggregation]`) runs each round's four masked-mode steps first (sim/masked.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.clock import Clock
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import UpdateRejected
from enclavefl.owner.data_owner import DataOwner, LocalReport
from enclavefl.owner.masked_owner import MaskedOwner
from enclavefl.sim.masked import masked_round
from enclavefl.task import Task
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.inmemory import InMemoryClient

log = logging.getLogger(__name__)

RoundCallback = Callable[[RoundSummary], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationResult:
    final_model: ModelWeights
    summaries: tuple[RoundSummary, ...]
    tee_backend: str
    tee_insecure: bool
    rejections: Mapping[str, int]
    receipts: tuple[SignedReceipt, ...] = ()  # the signed chain, one receipt per released round
    node_public_key_pem: bytes = b""  # the attested worker key that signs them


def run_in_process(
    *,
    job: JobSpec,
    task: Task,
    datasets: Mapping[str, Any],  # each owner's data, as its task takes it
    initial_model: ModelWeights,
    tee: TeeBackend,
    policy: AttestationPolicy,
    clock: Clock | None = None,
    on_round: RoundCallback | None = None,
    report: LocalReport | None = None,
    signing_keys: Mapping[str, ec.EllipticCurvePrivateKey] | None = None,
) -> FederationResult:
    """Run every round of `job`; each data owner attests the worker before its first upload.

    `signing_keys`: the owners' enrolled keys when the job enrolls keys (they sign each round's receipt).
    """
    worker = SecureWorker(job=job, initial_model=initial_model, tee=tee)
    owners = [
        DataOwner(
            name=name,
            task=task,
            data=data,
            node=InMemoryClient(worker),
            job=job,
            policy=policy,
            clock=clock,
            report=report,
            signing_key=(signing_keys or {}).get(name),
        )
        for name, data in datasets.items()
    ]
    for owner in owners:
        owner.attest_node()
    masked = [MaskedOwner(owner=owner, relay=worker) for owner in owners] if job.masked else []
    summaries: list[RoundSummary] = []
    for _ in range(job.rounds):
        round_index = worker.open_round()
        if masked:
            masked_round(worker, masked, round_index)
        for owner in [] if masked else owners:
            try:
                owner.run_round(round_index)
            except UpdateRejected as exc:  # the node refused it; the round goes on with the others
                log.warning("round %d: %s's update refused: %s", round_index, owner.name, exc)
        summary = close_round_with_owners(worker, owners)
        summaries.append(summary)
        if on_round is not None:
            on_round(summary)
    return FederationResult(
        final_model=worker.global_model,
        summaries=tuple(summaries),
        tee_backend=tee.name,
        tee_insecure=tee.is_insecure,
        rejections=dict(Counter(worker.rejections)),
        receipts=tuple(worker.receipts),
        node_public_key_pem=(owners[0].node_public_key_pem or b"") if owners else b"",
    )


def close_round_with_owners(worker: SecureWorker, owners: Sequence[DataOwner]) -> RoundSummary:
    """Seal the open round, have every owner record and sign its receipt, then release it (NotEnoughContributions:
    nothing sealed)."""
    worker.close_round()
    for owner in owners:
        owner.acknowledge_receipt(owner.node.pending_receipt(), chain=worker.receipts)
    return worker.release_round()

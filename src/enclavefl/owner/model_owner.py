"""The model owner's session with an attested node: submit the initial model, watch, download with verification.

    session = ModelOwnerSession.connect("host:port", job=job, policy=policy, credentials=creds)
    session.submit_initial_model(weights)
    for summary in session.watch(): ...
    final = session.download_final()              # receipt chain and final model hash verified

A simulation runs the same session over the in-memory transport (sim/federation.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from enclavefl.core.clock import Clock
from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipt_checks import ReceiptTracker, verify_receipt_chain
from enclavefl.core.receipts import RoundReceipt, SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ReceiptError
from enclavefl.owner.attested import AttestedNode, connect_and_attest
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import NodeStatus
from enclavefl.transport.auth import Role
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalModel:
    weights: ModelWeights
    receipts: tuple[RoundReceipt, ...]
    signed: tuple[SignedReceipt, ...] = ()  # the chain as the node sent it (signatures), for the receipts file


class ModelOwnerSession:
    """The model owner's control plane on an attested node: submit, status, watch, download (verified)."""

    def __init__(self, node: AttestedNode, *, job: JobSpec, tracker: ReceiptTracker | None = None) -> None:
        self.node = node
        self.job = job
        # pass a PersistentReceiptTracker to remember the chain across model-owner restarts (rollback detection)
        self.tracker = tracker or ReceiptTracker(job_digest=job.digest())

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        job: JobSpec,
        policy: AttestationPolicy,
        credentials: OwnerCredentials,
        clock: Clock | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        tracker: ReceiptTracker | None = None,
        collateral: CollateralSource | None = None,
    ) -> ModelOwnerSession:
        node = connect_and_attest(
            address,
            role=Role.MODEL_OWNER,
            name="",
            job=job,
            policy=policy,
            credentials=credentials,
            clock=clock,
            chunk_bytes=chunk_bytes,
            collateral=collateral,
        )
        return cls(node, job=job, tracker=tracker)

    def close(self) -> None:
        self.node.client.close()

    def submit_initial_model(self, weights: ModelWeights) -> str:
        return self.node.client.submit_initial_model(encode_weights(weights))

    def status(self) -> NodeStatus:
        return self.node.client.node_status()

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]:
        return self.node.client.watch(after_round=after_round)

    def receipts(self) -> tuple[RoundReceipt, ...]:
        """The node's receipt chain, verified and checked against what this session saw before (rollback)."""
        return self._verified(self.node.client.receipts())

    def _verified(self, chain: tuple[SignedReceipt, ...]) -> tuple[RoundReceipt, ...]:
        self.tracker.observe(chain, self.node.node_public_key_pem)
        return verify_receipt_chain(chain, self.node.node_public_key_pem, self.job.digest())

    def download_final(self) -> FinalModel:
        """The final model, accepted only if its hash is the one the last verified receipt names.

        The model is the last thing asked of the node: a node whose job ended may exit once it handed it out.
        """
        signed: tuple[SignedReceipt, ...] = self.node.client.receipts()
        receipts = self._verified(signed)
        if len(receipts) != self.job.rounds:
            raise ReceiptError(f"the chain has {len(receipts)} receipts, the job has {self.job.rounds} rounds")
        weights = decode_weights(self.node.client.final_model_bytes())
        if weights.sha256() != receipts[-1].global_model_sha256:
            raise ReceiptError("the final model's hash differs from the one the last receipt signs")
        return FinalModel(weights=weights, receipts=receipts, signed=signed)

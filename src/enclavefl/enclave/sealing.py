"""Sealing a round: finalize its aggregate, check it, sign its receipt, checkpoint it, all before anything leaves.

    sealer = RoundSealer(job=job, strategy=strategy, identity=identity, checkpoint_sink=store.save)
    pending = sealer.seal(state, global_model=g, global_sha256_hex=h, receipts=chain, rejected={}, exclude=...)

The new global model is laid out in safetensors bytes when the strategy accumulates in place (plain FedAvg on
float tensors: `start_aggregator`), so sealing copies nothing. The checkpoint is written before the receipt leaves
the enclave: a restart finds the round sealed and asks for the same signatures again (enclave/release.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from enclavefl.aggregation import AggregationStrategy, RoundAggregator
from enclavefl.aggregation.fedavg import FedAvg, accumulator_dtype
from enclavefl.core.codec import ModelBytes, decode_weights, encode_parts, encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, SignedReceipt, sign_receipt
from enclavefl.core.weights import ModelSchema, ModelWeights
from enclavefl.enclave.checkpoint import NodeCheckpoint, PendingRelease
from enclavefl.enclave.crash_points import crash_point
from enclavefl.enclave.finite import check_finite_aggregate, overflow_limit, overflow_offenders
from enclavefl.enclave.global_model import GlobalModel
from enclavefl.enclave.identity import NodeIdentity
from enclavefl.enclave.metrics import release_training_metrics
from enclavefl.enclave.receipt_log import ChainPrefix, Receipt
from enclavefl.enclave.release import PendingRound
from enclavefl.enclave.round_state import OpenRound
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.enclave.strategy_state import restore_strategy_state, strategy_state
from enclavefl.errors import NonFiniteAggregate, NotEnoughContributions, UnmaskingFailed

if TYPE_CHECKING:
    from enclavefl.privacy import PrivacySpent

Exclude = Callable[[Iterable[str], str], None]


class RoundSealer:
    """What sealing needs of the job: its strategy, the node's key and where checkpoints go."""

    def __init__(
        self,
        *,
        job: JobSpec,
        strategy: AggregationStrategy,
        identity: NodeIdentity,
        enrolled: frozenset[str],
        checkpoint_sink: Callable[[NodeCheckpoint], object] | None = None,
    ) -> None:
        self._job = job
        self._job_digest = job.digest()
        self._strategy = strategy
        self._identity = identity
        self._enrolled = enrolled
        # Called with each round's checkpoint BEFORE its aggregate is released: a crash either loses the round
        # (nothing left the enclave, it is redone) or finds it sealed on disk; never released-but-unaccounted.
        self._sink = checkpoint_sink
        self._pairs: list[Receipt] = []  # (body, signature) of the chain last checkpointed: it grows by one a round

    def checkpoint(
        self,
        rounds: int,
        model: ModelWeights,
        receipts: Sequence[SignedReceipt],
        pending: PendingRelease | None = None,
        sealing: SignedReceipt | None = None,
    ) -> NodeCheckpoint:
        """The job's state after `rounds` rounds (the last one, `sealing`'s, sealed but unreleased when `pending`
        is given). `receipts` is read now, not kept: the worker's own list may be passed."""
        accountant, optimizer = strategy_state(self._strategy)
        return NodeCheckpoint(
            job_digest=self._job_digest,
            rounds_completed=rounds,
            global_model=model,
            identity_key_der=self._identity.private_der(),
            receipts=self._receipt_pairs(receipts, sealing),
            accountant_state=accountant,
            strategy_state=optimizer,
            pending=pending,
        )

    def _receipt_pairs(self, receipts: Sequence[SignedReceipt], sealing: SignedReceipt | None) -> ChainPrefix:
        """(body, signature) of each receipt and of `sealing`, as a view of a list that only grows: a round
        converts and stores one receipt, not the whole chain (the chain's length must not show in a round's cost)."""
        chain: Sequence[SignedReceipt] = receipts if sealing is None else _Extended(receipts, sealing)
        done, length = self._pairs, len(chain)
        if len(done) > length or (done and (chain[len(done) - 1].body, chain[len(done) - 1].signature) != done[-1]):
            done = self._pairs = []  # another chain than the last one: convert it whole (older views keep theirs)
        done.extend((chain[i].body, chain[i].signature) for i in range(len(done), length))
        return ChainPrefix(done, length)

    def seal(
        self,
        state: OpenRound,
        *,
        schema: ModelSchema,
        global_sha256_hex: str,
        receipts: Sequence[SignedReceipt],
        rejected: Mapping[str, int],
        exclude: Exclude,
    ) -> PendingRound:
        """The round sealed, signed and checkpointed; NotEnoughContributions / NonFiniteAggregate: nothing is."""
        count = state.aggregator.contributions
        if count < self._job.min_contributions:
            raise NotEnoughContributions(
                f"round {state.index}: {count} update(s) arrived, the job requires at least "
                f"{self._job.min_contributions}; no aggregate is released"
            )
        before = strategy_state(self._strategy)  # finalize() steps server optimizers and the accountant
        try:
            model_bytes, new_global = _finalized_model(state.aggregator, state.next_global_bytes)
            check_finite_aggregate(new_global, round_index=state.index)
        except NonFiniteAggregate as exc:
            restore_strategy_state(self._strategy, *before)  # the round never happened: redone from scratch
            offenders = overflow_offenders(state.contribution_bounds, overflow_limit(schema))
            exclude(offenders, type(exc).__name__)
            # No names: this message reaches the host's console; each left-out owner is told (UpdateExcluded).
            raise NonFiniteAggregate(
                f"{exc}; the round is redone without the {len(offenders)} update(s) with the largest contributions"
            ) from None
        except (UnmaskingFailed, NotEnoughContributions):  # masked mode: the round is lost, nothing leaves
            restore_strategy_state(self._strategy, *before)
            raise
        crash_point("round-finalized", state.index)
        model_sha256 = new_global.sha256()
        spent = privacy_spent(self._strategy)  # finalize() charged this round to the accountant
        receipt = RoundReceipt(
            job_digest=self._job_digest,
            round=state.index,
            previous_sha256=receipts[-1].sha256 if receipts else GENESIS_SHA256,
            global_model_sha256=model_sha256,
            contributions=count,
            update_commitments=tuple(sorted(state.commitments)),
            dp=self._job.dp,
            cumulative_epsilon=spent.epsilon if spent is not None else None,
            cohort=state.cohort.commitments if state.cohort is not None else None,
        )
        signed = sign_receipt(receipt, self._identity.private_key)
        metrics = release_training_metrics(state.train_metrics, self._job)
        evaluation = release_training_metrics(state.evaluation, self._job)  # the same rule: >= K owners, no DP
        sealed = PendingRelease(
            contributors=tuple(sorted(state.contributors)),
            metrics=metrics,
            evaluation=evaluation,
            rejected=dict(rejected),
            released_model_sha256=bytes.fromhex(global_sha256_hex),
        )
        checkpoint = self.checkpoint(state.index, new_global, receipts, sealed, signed)
        # Sealed before its receipt leaves: a restart finds this round and asks for the same signatures again.
        stored = self._sink(checkpoint) if self._sink is not None else None
        crash_point("round-sealed", state.index)
        summary = RoundSummary(
            round=state.index,
            contributions=count,
            global_model_sha256=model_sha256.hex(),
            metrics=metrics,
            rejected=dict(rejected),
            evaluation=evaluation,
        )
        return PendingRound(
            receipt=signed,
            model=new_global,
            model_bytes=model_bytes,
            summary=summary,
            contributors=frozenset(state.contributors),
            # a cohort round counts its cohort's signatures (a majority of it, and every contributor's)
            enrolled=state.cohort.members if state.cohort is not None else self._enrolled,
            checkpoint=checkpoint,
            stored=stored if isinstance(stored, StoredModel) and stored.rounds == state.index else None,
        )


def privacy_spent(strategy: object) -> PrivacySpent | None:
    """Epsilon spent so far and the DP parameters (for receipts), or None when the strategy has no DP layer."""
    while strategy is not None:  # server optimizers wrap the DP mean: follow `.inner`
        spent = getattr(strategy, "privacy_spent", None)
        if callable(spent):
            return cast("PrivacySpent", spent())
        strategy = getattr(strategy, "inner", None)
    return None


def start_aggregator(strategy: AggregationStrategy, model: GlobalModel) -> tuple[RoundAggregator, bytearray | None]:
    """The round's aggregator; for plain FedAvg on float tensors, accumulating inside the next model's bytes.

    The next model has the global model's schema, so its safetensors header is the global model's header byte for
    byte; only the data section is new. That round needs nothing else of the global model, so its resident copy is
    dropped first when the sealed checkpoint holds it (downloads read it from there): the round holds 2x the model.
    """
    dtypes = [np.dtype(t.dtype) for t in model.schema.tensors]
    if not isinstance(strategy, FedAvg) or any(accumulator_dtype(d) != d for d in dtypes):
        return strategy.start_round(model.weights()), None
    model.evict()  # before the accumulator is allocated: never global + accumulator + slot at once
    next_bytes = bytearray(model.nbytes)
    next_bytes[: len(model.header)] = model.header
    accumulators = decode_weights(next_bytes)  # the global model's schema: FedAvg reads only shapes and dtypes
    return strategy.start_round(accumulators, accumulators=accumulators), next_bytes


def _finalized_model(aggregator: RoundAggregator, in_place: bytearray | None) -> tuple[ModelBytes, ModelWeights]:
    """The new global model's safetensors bytes and its (read-only, zero-copy) weights."""
    finalized = aggregator.finalize()
    if in_place is not None:
        view = memoryview(in_place).toreadonly()
        new_global = decode_weights(view)
        if all(np.shares_memory(finalized[n], new_global[n]) for n in finalized):
            return in_place, new_global  # bytearray: never written again (the aggregator is dropped)
    global_bytes = encode_weights(finalized)
    return global_bytes, decode_weights(global_bytes)


def canonical_model(weights: ModelWeights, received: ModelBytes | None) -> tuple[ModelBytes, ModelWeights]:
    """The model's canonical safetensors bytes and read-only views of them.

    `received` is adopted when it is already canonical (same header bytes as `encode_weights` writes, and the same
    tensor bytes), so the model the owner submitted is held once, not twice.
    """
    if received is not None:
        parts = encode_parts(weights)
        head = b"".join(bytes(p) for p in parts[:2])
        if bytes(received[: len(head)]) == head and len(received) == len(head) + weights.nbytes:
            adopted = decode_weights(memoryview(received).toreadonly())
            if all(np.array_equal(adopted[n], weights[n]) for n in weights):
                return received, adopted
    encoded = encode_weights(weights)
    return encoded, decode_weights(encoded)


class _Extended(Sequence[SignedReceipt]):
    """`receipts` followed by `last`, without copying `receipts`."""

    def __init__(self, receipts: Sequence[SignedReceipt], last: SignedReceipt) -> None:
        self._receipts, self._last = receipts, last

    def __len__(self) -> int:
        return len(self._receipts) + 1

    def __getitem__(self, index: int) -> SignedReceipt:  # type: ignore[override]
        index = index + len(self) if index < 0 else index
        return self._last if index == len(self._receipts) else self._receipts[index]

"""A data owner (Bob, Alice): checks the node, then each round trains locally and uploads its model."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import LARGE_TRANSFER_BYTES
from enclavefl.core.receipt_checks import sign_acknowledgement
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.update_message import UpdateMessage, new_commitment_salt
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import AttestationError, ConfigError, TaskError
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.commitment_log import CommitmentLog
from enclavefl.task import EvalResult, Task, TensorData, TrainResult

T = TypeVar("T")
LocalReport = Callable[[str], None]
DATA_TENSORS = ("x", "y")  # a data owner's file: inputs `x` and targets `y`, same first dimension


def load_tensor_data(path: str | os.PathLike[str]) -> TensorData:
    """A safetensors file holding exactly the tensors `x` and `y` (no pickle: safetensors only)."""
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"--data {path}: not a readable safetensors file: {exc}") from None
    if set(tensors) != set(DATA_TENSORS):
        raise ConfigError(f"--data {path}: expected exactly the tensors 'x' and 'y', found {sorted(tensors)}")
    try:
        return TensorData(x=tensors["x"], y=tensors["y"])
    except ValueError as exc:
        raise ConfigError(f"--data {path}: {exc}") from None


class DataOwner:
    """Holds private data that never leaves this object; sends only trained weights and aggregate numbers.

    It acts through one attested node (`use(node)`, from owner/attested.py), and keeps what it knows of the job's
    receipt chain in `chain` (owner/chain_view.py).
    """

    def __init__(
        self,
        *,
        name: str,
        task: Task,
        data: Any,  # TensorData, StreamedData, or what the task reads itself: it never leaves this object
        job: JobSpec,
        report: LocalReport | None = None,
        before_upload: Callable[[int, bytes], None] | None = None,
        commitment_log: CommitmentLog | None = None,
        large_transfer_bytes: int = LARGE_TRANSFER_BYTES,
        chain: ReceiptChainView | None = None,
        salts: Callable[[], bytes] = new_commitment_salt,
        held_out: Any = None,
    ) -> None:
        """`salts`: where each upload's commitment salt comes from (a fresh one from os.urandom; tests inject).
        `held_out`: data kept out of training; in rounds the job's `evaluate_every` names, the model the round
        starts from is evaluated on it and the figures travel with the update (only means over >= K leave)."""
        self.name = name
        self.large_transfer_bytes = large_transfer_bytes
        self.task = task
        self.data = data
        self.job = job
        self.report = report
        self.before_upload = before_upload  # (round, commitment of the upload): e.g. the privacy ledger, durably
        self.commitment_log = commitment_log  # persists each salt before its upload (owner/commitment_log.py)
        self.chain = chain or ReceiptChainView(job_digest=job.digest())
        self.chain.cohort_size = job.cohort_size  # a cohort job's receipts are checked against this owner's claims
        self.salts = salts
        self.held_out = held_out
        self.node: AttestedNode | None = None  # the node this owner attested and acts through
        self.local_losses: list[tuple[int, tuple[float, ...]]] = []
        self._model = task.create_model()

    def use(self, node: AttestedNode) -> None:
        """Act through `node` from now on (attested by owner/attested.py; again after each reconnection)."""
        self.node = node

    def attested(self) -> AttestedNode:
        """The node this owner acts through; AttestationError while it attested none."""
        if self.node is None:
            raise AttestationError("the node was not attested: attest it (owner/attested.py) and `use` it first")
        return self.node

    @overload
    def run_round(self, round_index: int, *, global_model: bytes | None = None) -> bytes: ...

    @overload
    def run_round(
        self, round_index: int, *, global_model: bytes | None = None, send: Callable[[UpdateMessage], T]
    ) -> T: ...

    def run_round(
        self,
        round_index: int,
        *,
        global_model: bytes | None = None,
        send: Callable[[UpdateMessage], object] | None = None,
    ) -> object:
        """Download the round's global model (unless the node sent it along: `global_model`), train on local data,
        upload the result (through `send` if given, e.g. an upload that also waits for the seal: its answer is
        returned; else the node's `upload_update`)."""
        node = self.attested()
        start, result = self.train_local(round_index, global_model=global_model)
        evaluation = self.evaluate_start(round_index, start)
        mean_loss = sum(result.losses) / len(result.losses) if result.losses else 0.0
        self.chain.forget_upload(round_index)  # an earlier attempt of this round no longer counts
        message = UpdateMessage.of(  # a fresh salt per upload (never reused: two uploads under one could be compared)
            owner=self.name,
            round=round_index,
            num_examples=result.num_examples,
            payload=encode_weights(weights_from_module(self._model)),
            metrics={"train_loss": mean_loss},
            salts=self.salts,
            evaluation=evaluation.metrics if evaluation is not None else None,
            evaluation_examples=evaluation.num_examples if evaluation is not None else 0,
        )
        return self.send_update(message, send or node.client.upload_update)

    def evaluate_start(self, round_index: int, start: ModelWeights) -> EvalResult | None:
        """The round's starting model evaluated on `held_out` when the job asks for it this round (else None).

        Its metrics hold the loss as `loss`; they leave only with the update, and only means over >= K owners are
        released. A loss or metric that is not finite is said here at once: the node would refuse the update."""
        if self.held_out is None or not self.job.evaluates_before(round_index):
            return None
        model = self.task.create_model()
        load_weights_into(model, start)
        result = self.task.evaluate(model, self.held_out)
        metrics = {"loss": float(result.loss), **{k: float(v) for k, v in result.metrics.items()}}
        bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
        if bad:
            raise TaskError(
                f"the evaluation of round {round_index - 1}'s model on your held-out data gave "
                f"non-finite {', '.join(bad)}; the node would refuse the update"
            )
        if self.report is not None:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            self.report(
                f"[{self.name}] round {round_index - 1}'s model on your held-out data: {shown} "
                f"({result.num_examples} examples; sent with the update, released only as a mean over >= K)"
            )
        return dataclasses.replace(result, metrics=metrics)

    def send_update(self, message: UpdateMessage, send: Callable[[UpdateMessage], T]) -> T:
        """Put the upload's commitment on record (ledger, commitment log), send it, then remember it as accepted."""
        header = message.header
        if self.before_upload is not None:  # e.g. the privacy ledger, durably, before the update leaves
            self.before_upload(header.round, header.commitment)
        if self.commitment_log is not None:  # on disk before the upload leaves: an accepted update stays provable
            self.commitment_log.record(header.round, salt=header.commitment_salt, commitment=header.commitment)
        answer = self._transfer(header.round, "uploading the update", len(message.payload), lambda: send(message))
        self.chain.record_upload(header.round, commitment=header.commitment, salt=header.commitment_salt)
        return answer

    def train_local(
        self, round_index: int, *, global_model: bytes | None = None, seed: int | None = None
    ) -> tuple[ModelWeights, TrainResult]:
        """Download the round's global model (unless given: `global_model`, the bytes the node sent with the round's
        status) and train on local data (the model is left in `self.model`); `seed`: the training seed instead of
        the round's (masked mode's re-attempts draw a fresh one)."""
        node = self.attested()
        self.chain.check_may_upload(round_index)  # RoundAlreadySigned: this round was closed with us
        expected = self.job.model_schema.nbytes if self.job.model_schema is not None else 0
        payload_in = (
            global_model
            if global_model is not None
            else self._transfer(
                round_index,
                "downloading the global model",
                expected,
                lambda: node.client.global_model_bytes(round_index),
            )
        )
        global_weights = decode_weights(payload_in)
        load_weights_into(self._model, global_weights)
        start = None  # FedProx's anchor, the round's start: a second model, built only when FedProx is on
        if self.job.train.proximal_mu > 0:
            start = self.task.create_model()
            load_weights_into(start, global_weights)
        if seed is None:
            seed = round_seed(self.job.train.seed, self.name, round_index)
        config = dataclasses.replace(self.job.train, seed=seed)
        result = self.task.train(self._model, self.data, config, global_model=start)
        self.local_losses.append((round_index, result.losses))
        if self.report is not None:
            self.report(f"[{self.name}] round {round_index} local losses: {describe_losses(result)}")
        return global_weights, result

    def _transfer(self, round_index: int, what: str, size: int, move: Callable[[], T]) -> T:
        """Run `move`; for a large model, say so before and how long it took after (a WAN upload takes a while)."""
        if self.report is None or size < self.large_transfer_bytes:
            return move()
        self.report(f"[{self.name}] round {round_index}: {what} ({size / 2**20:.1f} MiB)...")
        started = time.monotonic()
        result = move()
        took = max(time.monotonic() - started, 1e-6)
        self.report(f"[{self.name}] round {round_index}: {what} done in {took:.1f} s ({size / 2**20 / took:.0f} MiB/s)")
        return result

    def sign_receipt(self, pending: SignedReceipt, *, chain: Sequence[SignedReceipt] | None = None) -> Acknowledgement:
        """Second phase of a round: check the sealed round's receipt against the node's released `chain` (default:
        the chain last synced), record it durably, then sign it; the caller sends the signature."""
        node = self.attested()
        receipt = self.chain.record_for_signing(pending, node.node_public_key_pem, chain=chain)
        if node.signing_key is None:  # a keyless owner of a simulation, trusted in process only
            return Acknowledgement(owner=self.name, round=receipt.round, receipt_sha256=pending.sha256, signature=b"")
        return sign_acknowledgement(node.signing_key, owner=self.name, receipt=pending)

    def evaluate_round(self, round_index: int, held_out: Any) -> EvalResult:
        """Evaluate the global model released after `round_index` on held-out data that never leaves here.

        The caller sends `num_examples` and the metrics (loss included) to the node's federated evaluation.
        """
        node = self.attested()
        model = self.task.create_model()
        load_weights_into(model, decode_weights(node.client.global_model_bytes(round_index)))
        result = self.task.evaluate(model, held_out)
        return dataclasses.replace(result, metrics={"loss": result.loss, **result.metrics})

    @property
    def model(self) -> torch.nn.Module:
        return self._model


def describe_losses(result: TrainResult) -> str:
    """One round's local training in one line: steps, first and last loss, mean (never one number per step)."""
    losses = result.losses
    if not losses:
        return f"no step ({result.num_examples} examples)"
    mean = sum(losses) / len(losses)
    if len(losses) == 1:
        return f"1 step, {losses[0]:.4f} on {result.num_examples} examples"
    return (
        f"{len(losses)} steps, {losses[0]:.4f} -> {losses[-1]:.4f} (mean {mean:.4f}) on {result.num_examples} examples"
    )


def round_seed(seed: int, owner: str, round_index: int) -> int:
    """A per-owner, per-round shuffling seed derived from the job's seed (not a secret)."""
    digest = hashlib.sha256(f"{seed}/{owner}/{round_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF

"""A data owner (Bob, Alice): checks the node, then each round trains locally and uploads its model."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from safetensors import SafetensorError
from safetensors.torch import load_file

from enclavefl.core.acknowledgement import Acknowledgement, SignedRounds, sign_acknowledgement
from enclavefl.core.clock import Clock, SystemClock
from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.messages import LARGE_TRANSFER_BYTES, UpdateMessage
from enclavefl.core.receipts import GENESIS_SHA256, SignedReceipt, check_update_included, verify_receipt
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import AttestationError, ConfigError, ReceiptError
from enclavefl.owner.commitment_log import CommitmentLog
from enclavefl.privacy.epsilon import verify_epsilon_schedule
from enclavefl.task import EvalResult, Task, TensorData, TrainResult
from enclavefl.tee.binding import spki_sha256
from enclavefl.tee.evidence import VerifiedEnclave
from enclavefl.tee.verify.attest import verify_node
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import NodeApi

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


def key_spki_sha256(public_key_pem: bytes) -> bytes:
    return spki_sha256(serialization.load_pem_public_key(public_key_pem))


class DataOwner:
    """Holds private data that never leaves this object; sends only trained weights and aggregate numbers."""

    def __init__(
        self,
        *,
        name: str,
        task: Task,
        data: Any,  # TensorData, StreamedData, or what the task reads itself: it never leaves this object
        node: NodeApi,
        job: JobSpec,
        policy: AttestationPolicy,
        clock: Clock | None = None,
        report: LocalReport | None = None,
        before_upload: Callable[[int, bytes], None] | None = None,
        commitment_log: CommitmentLog | None = None,
        large_transfer_bytes: int = LARGE_TRANSFER_BYTES,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        signed_rounds: SignedRounds | None = None,
    ) -> None:
        self.name = name
        self.large_transfer_bytes = large_transfer_bytes
        self.task = task
        self.data = data
        self.node = node
        self.job = job
        self.policy = policy
        self.clock = clock or SystemClock()
        self.report = report
        self.before_upload = before_upload  # (round, commitment of the upload): e.g. the privacy ledger, durably
        self.verified: VerifiedEnclave | None = None
        self.local_losses: list[tuple[int, tuple[float, ...]]] = []
        # round -> commitment of the upload the node accepted (what the round's receipt must list), and the
        # secret salt that opens it: with it and the payload, this owner can prove the inclusion to anyone.
        self.accepted_updates: dict[int, bytes] = {}
        self.commitment_salts: dict[int, bytes] = {}
        self.commitment_log = commitment_log  # persists each salt before its upload (owner/commitment_log.py)
        self.node_public_key_pem: bytes | None = None  # the attested key: it signs the receipts
        self.signing_key = signing_key  # the owner's enrolled key (None: a keyless in-process owner)
        # the receipt signed per round; pass a PersistentReceiptTracker's to keep it across restarts
        self.signed_rounds = signed_rounds if signed_rounds is not None else SignedRounds()
        self._model = task.create_model()

    def attest_node(self) -> VerifiedEnclave:
        """Check the job's privacy cost, then verify the node before anything is sent.

        Raises EpsilonScheduleMismatch for a job that understates epsilon, an AttestationError leaf on any
        mismatch of the node.
        """
        verify_epsilon_schedule(self.job)
        nonce = secrets.token_bytes(32)
        bundle = self.node.attest(nonce)
        self.verified = verify_node(
            bundle,
            policy=self.policy,
            nonce=nonce,
            expected_job_digest=self.job.digest(),
            channel_spki_sha256=key_spki_sha256(bundle.node_public_key_pem),
            now=int(self.clock.now()),
        )
        self.node_public_key_pem = bundle.node_public_key_pem
        return self.verified

    def run_round(
        self,
        round_index: int,
        *,
        global_model: bytes | None = None,
        send: Callable[[UpdateMessage], T] | None = None,
    ) -> T | None:
        """Download the round's global model (unless the node sent it along: `global_model`), train on local data,
        upload the result (through `send` if given, e.g. an upload that also waits for the seal: its answer is
        returned; else `node.submit_update`)."""
        _, result = self.train_local(round_index, global_model=global_model)
        mean_loss = sum(result.losses) / len(result.losses) if result.losses else 0.0
        payload = encode_weights(weights_from_module(self._model))
        self.accepted_updates.pop(round_index, None)  # an earlier attempt of this round no longer counts
        self.commitment_salts.pop(round_index, None)
        message = UpdateMessage(
            owner=self.name,
            round=round_index,
            num_examples=result.num_examples,
            payload=payload,
            metrics={"train_loss": mean_loss},
        )  # a fresh salt per upload (never reused: two uploads under one salt could be compared)
        commitment = message.commitment()
        if self.before_upload is not None:  # e.g. the privacy ledger, durably, before the update leaves
            self.before_upload(round_index, commitment)
        if self.commitment_log is not None:  # on disk before the upload leaves: an accepted update stays provable
            self.commitment_log.record(round_index, salt=message.commitment_salt, commitment=commitment)
        answer = self._transfer(
            round_index,
            "uploading the update",
            len(payload),
            lambda: send(message) if send is not None else self.node.submit_update(message),
        )
        self.accepted_updates[round_index] = commitment
        self.commitment_salts[round_index] = message.commitment_salt
        return answer

    def train_local(self, round_index: int, *, global_model: bytes | None = None) -> tuple[ModelWeights, TrainResult]:
        """Download the round's global model (unless given: `global_model`, the bytes the node sent with the round's
        status) and train on local data (the model is left in `self.model`)."""
        if self.verified is None:
            raise AttestationError("the node was not attested: call attest_node() first")
        self.signed_rounds.check_may_upload(round_index)  # RoundAlreadySigned: this round was closed with us
        expected = self.job.model_schema.nbytes if self.job.model_schema is not None else 0
        payload_in = (
            global_model
            if global_model is not None
            else self._transfer(
                round_index, "downloading the global model", expected, lambda: self.node.global_model_bytes(round_index)
            )
        )
        global_weights = decode_weights(payload_in)
        load_weights_into(self._model, global_weights)
        start = None  # FedProx's anchor, the round's start: a second model, built only when FedProx is on
        if self.job.train.proximal_mu > 0:
            start = self.task.create_model()
            load_weights_into(start, global_weights)
        config = dataclasses.replace(self.job.train, seed=round_seed(self.job.train.seed, self.name, round_index))
        result = self.task.train(self._model, self.data, config, global_model=start)
        self.local_losses.append((round_index, result.losses))
        if self.report is not None:
            losses = ", ".join(f"{x:.4f}" for x in result.losses)
            self.report(f"[{self.name}] round {round_index} local losses: {losses}")
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

    def acknowledge_receipt(self, pending: SignedReceipt, *, chain: Sequence[SignedReceipt]) -> Acknowledgement:
        """Second phase of a round: check the sealed round's receipt, record it durably, then sign it back.

        `chain` is the node's released chain (verified by the caller); the receipt must extend it. Once recorded,
        this owner never uploads for that round again and refuses any node that shows another receipt for it.
        """
        ack = self.sign_receipt(pending, chain=chain)
        self.node.acknowledge(ack)
        return ack

    def sign_receipt(self, pending: SignedReceipt, *, chain: Sequence[SignedReceipt]) -> Acknowledgement:
        """`acknowledge_receipt` without sending: checked, recorded durably, signed; the caller sends it."""
        if self.verified is None or self.node_public_key_pem is None:
            raise AttestationError("the node was not attested: call attest_node() first")
        receipt = verify_receipt(pending, self.node_public_key_pem)
        previous = chain[-1].sha256 if chain else GENESIS_SHA256
        extends = receipt.round == len(chain) + 1 and receipt.previous_sha256 == previous
        if receipt.job_digest != self.job.digest() or not extends:
            raise ReceiptError(
                f"the pending receipt of round {receipt.round} does not extend the node's chain of {len(chain)} "
                "round(s) for this job: refusing to sign it"
            )
        if receipt.round in self.accepted_updates:
            check_update_included(receipt, self.accepted_updates[receipt.round])
        self.signed_rounds.record(pending, self.node_public_key_pem)  # durable before the signature leaves
        return (
            sign_acknowledgement(self.signing_key, owner=self.name, receipt=pending)
            if self.signing_key is not None
            else Acknowledgement(owner=self.name, round=receipt.round, receipt_sha256=pending.sha256, signature=b"")
        )

    def evaluate_round(self, round_index: int, held_out: Any) -> EvalResult:
        """Evaluate the global model released after `round_index` on held-out data that never leaves here.

        The caller sends `num_examples` and the metrics (loss included) to the node's `submit_evaluation`.
        """
        if self.verified is None:
            raise AttestationError("the node was not attested: call attest_node() first")
        model = self.task.create_model()
        load_weights_into(model, decode_weights(self.node.global_model_bytes(round_index)))
        result = self.task.evaluate(model, held_out)
        return dataclasses.replace(result, metrics={"loss": result.loss, **result.metrics})

    @property
    def model(self) -> torch.nn.Module:
        return self._model


def round_seed(seed: int, owner: str, round_index: int) -> int:
    """A per-owner, per-round shuffling seed derived from the job's seed (not a secret)."""
    digest = hashlib.sha256(f"{seed}/{owner}/{round_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF

"""Fuzzing every decoder that takes bytes from the network or from disk: each refuses with its precise error.

Briefly in CI (ENCLAVEFL_FUZZ_EXAMPLES, default 40 per decoder); longer with scripts/fuzz.sh. Inputs are random
bytes and, more usefully, mutations of valid encodings (a flipped byte, a truncation, a spliced header).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.job_canonical import load_canonical_job
from enclavefl.core.jobfile import load_job
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.enclave.receipt_log import LogPosition
from enclavefl.enclave.staging import ingest_stream
from enclavefl.errors import (
    CheckpointError,
    CodecError,
    EnclaveFLError,
    JobSpecError,
    QuoteFormatError,
    ReceiptError,
    UpdateRejected,
)
from enclavefl.owner.commitment_log import CommitmentLog
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.owner.provenance import ChainAttestation, ReceiptsFile, read_receipts_file, receipts_file_text
from enclavefl.tee.evidence import AttestationBundle, Evidence, TeeKind
from enclavefl.tee.verify.quote import parse_quote
from enclavefl.transport import owner_wire
from enclavefl.transport.proto import enclavefl_pb2 as pb

EXAMPLES = int(os.environ.get("ENCLAVEFL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False)

MODEL = ModelWeights({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float32)})
MODEL_BYTES = encode_weights(MODEL)
KEY = bytes(range(16))
JOB = bytes([9]) * 32


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """A valid encoding with a few bytes flipped, cut, or a random span spliced in."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["flip", "cut", "splice", "set"]))
            pos = draw(st.integers(0, max(0, len(data) - 1)))
            if op == "flip" and data:
                data[pos] ^= draw(st.integers(1, 255))
            elif op == "cut":
                del data[pos:]
            elif op == "splice":
                data[pos:pos] = draw(st.binary(max_size=16))
            elif data:
                data[pos] = draw(st.sampled_from([0x00, 0x22, 0x7B, 0x7D, 0xFF, 0x30]))
        return bytes(data)

    return build()


def any_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), mutated(valid))


# --- safetensors header (updates, global models, checkpoints) ------------------------------------
def _header_only(payload: bytes) -> bytes:
    return struct.pack("<Q", len(payload)) + payload


@FUZZ
@given(st.one_of(any_bytes(MODEL_BYTES), st.binary(max_size=300).map(_header_only)))
def test_safetensors_decoder_refuses_with_codec_error(data: bytes) -> None:
    try:
        weights = decode_weights(data)
    except CodecError:
        return
    assert encode_weights(weights) is not None  # what decodes is a usable model


# --- chunk framing: the node's streaming ingest of an update ---------------------------------------
@FUZZ
@given(any_bytes(MODEL_BYTES), st.lists(st.integers(1, 64), min_size=1, max_size=40))
def test_streamed_update_ingest_refuses_with_update_rejected(data: bytes, cuts: list[int]) -> None:
    chunks, pos = [], 0
    for size in cuts:
        chunks.append(data[pos : pos + size])
        pos += size
    chunks.append(data[pos:])
    buffer = np.empty(MODEL.schema.nbytes, dtype=np.uint8)
    try:
        staged = ingest_stream(
            chunks, buffer=buffer, schema=MODEL.schema, max_bytes=MODEL.schema.nbytes, header_limit=4096
        )
    except UpdateRejected:
        return
    assert sorted(staged.weights) == sorted(MODEL)


# --- evidence bundle (protobuf from the node) and the quote inside ---------------------------------
@FUZZ
@given(
    tee=st.one_of(st.sampled_from(["sgx", "tdx"]), st.text(max_size=8)),
    quote=st.binary(max_size=1200),
    collateral=st.text(max_size=64),
)
def test_evidence_bundle_and_quote_parsers_refuse_with_quote_format_error(
    tee: str, quote: bytes, collateral: str
) -> None:
    message = pb.AttestationBundle(tee=tee, quote=quote, collateral_json=collateral)
    try:
        bundle = owner_wire.bundle_from_proto(pb.AttestationBundle.FromString(message.SerializeToString()))
        parse_quote(bundle.evidence.quote)
    except QuoteFormatError:
        return


# --- job spec (TOML from the model owner's file) -----------------------------------------------------
VALID_JOB = b"""name = "j"
rounds = 2
min_contributions = 1
initial_model_sha256 = "%s"
model_schema = [{ name = "w", shape = [3, 4], dtype = "float32" }]
[train]
local_steps = 1
""" % MODEL.sha256().hex().encode()


def load_job_text(text: bytes) -> JobSpec:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "job.toml").write_bytes(text)
        return load_job(Path(tmp) / "job.toml")


@FUZZ
@given(any_bytes(VALID_JOB))
def test_job_file_loader_refuses_with_job_spec_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.toml"
        path.write_bytes(data)
        try:
            load_job(path)
        except JobSpecError:
            return


# --- job spec (canonical JSON: what the enclave loads, core/job_canonical.py) ----------------------------------------
VALID_CANONICAL_JOB = load_job_text(VALID_JOB).canonical_text().encode()


@FUZZ
@given(any_bytes(VALID_CANONICAL_JOB))
def test_canonical_job_loader_refuses_with_job_spec_error_or_loads_exactly_its_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.json"
        path.write_bytes(data)
        try:
            job = load_canonical_job(path)
        except JobSpecError:
            return
    assert job.canonical_text().encode() == data.removesuffix(b"\n")  # what it attests is what it read


# --- checkpoints (sealed on disk, and the plaintext layout behind the seal) -------------------------
def _checkpoint() -> NodeCheckpoint:
    return NodeCheckpoint(
        job_digest=JOB,
        rounds_completed=2,
        global_model=MODEL,
        identity_key_der=b"\x30\x03key",
        receipts=((b"body1", b"sig1"), (b"body2", b"sig2")),
        accountant_state={"dp_rounds_released": 2},
        strategy_state=ModelWeights({"m/w": np.zeros(3)}),
    )


def _plaintext(checkpoint: NodeCheckpoint) -> bytes:
    """What the store seals: the checkpoint with its receipts' place in the sealed log."""
    return b"".join(bytes(p) for p in checkpoint.to_parts(LogPosition(records=2)))


CHECKPOINT_PLAINTEXT = _plaintext(_checkpoint())


@FUZZ
@given(any_bytes(CHECKPOINT_PLAINTEXT))
def test_checkpoint_plaintext_decoder_refuses_with_checkpoint_error(data: bytes) -> None:
    try:
        NodeCheckpoint.decode(data)
    except CheckpointError:
        return


@FUZZ
@given(st.data())
def test_sealed_checkpoint_files_are_refused_whole_with_checkpoint_error(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp), sealing_key=KEY, job_digest=JOB)
        path = store.save(_checkpoint())
        path.write_bytes(data.draw(any_bytes(path.read_bytes())))
        try:
            loaded = store.load(path)
        except CheckpointError:
            return
        # only an unchanged file opens
        assert _plaintext(loaded) == CHECKPOINT_PLAINTEXT and tuple(loaded.receipts) == _checkpoint().receipts


# --- receipts (from the node) and the owners' receipt memory (from their disk) ----------------------
VALID_RECEIPT = RoundReceipt(
    job_digest=JOB,
    round=1,
    previous_sha256=GENESIS_SHA256,
    global_model_sha256=bytes(32),
    contributions=1,
    update_commitments=(bytes([1]) * 32,),
).canonical_bytes()


@FUZZ
@given(any_bytes(VALID_RECEIPT))
def test_receipt_body_parser_refuses_with_receipt_error(data: bytes) -> None:
    try:
        SignedReceipt.parse(data, b"sig")
    except ReceiptError:
        return


@FUZZ
@given(st.data())
def test_owner_receipt_memory_is_refused_with_receipt_error(data: st.DataObject) -> None:
    valid = json.dumps(
        {
            "format": "enclavefl/owner-receipts/v1",
            "job_digest": JOB.hex(),
            "seen": {"1": "00" * 32},
            "last_receipt": None,
        }
    ).encode()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / f"receipts-{JOB.hex()[:16]}.json").write_bytes(data.draw(any_bytes(valid)))
        try:
            PersistentReceiptTracker.open(directory, job_digest=JOB)
        except ReceiptError:
            return


VALID_RECEIPTS_FILE = receipts_file_text(
    ReceiptsFile(
        attestation=ChainAttestation(
            bundle=AttestationBundle(
                evidence=Evidence(tee=TeeKind.SGX, quote=b"quote", collateral_json="{}"),
                node_spki_sha256=bytes(32),
                job_digest=JOB,
                node_public_key_pem=b"-----BEGIN PUBLIC KEY-----\n",
            ),
            nonce=bytes(32),
            attested_at=1,
        ),
        final_model_sha256=bytes(32),
        receipts=(SignedReceipt.parse(VALID_RECEIPT, b"sig"),),
    )
).encode()


@FUZZ
@given(st.data())
def test_model_owner_receipts_file_is_refused_with_receipt_error(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.receipts.json"
        path.write_bytes(data.draw(any_bytes(VALID_RECEIPTS_FILE)))
        try:
            read_receipts_file(path)
        except ReceiptError:
            return


@FUZZ
@given(st.data())
def test_owner_commitment_log_is_refused_with_receipt_error(data: st.DataObject) -> None:
    valid = json.dumps(
        {
            "format": "enclavefl/owner-commitments/v1",
            "job_digest": JOB.hex(),
            "rounds": {"1": [{"salt": "11" * 32, "commitment": "22" * 32}]},
        }
    ).encode()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / f"commitments-{JOB.hex()[:16]}.json").write_bytes(data.draw(any_bytes(valid)))
        try:
            CommitmentLog.open(directory, job_digest=JOB)
        except ReceiptError:
            return


@pytest.mark.parametrize("error", [CheckpointError, CodecError, JobSpecError, QuoteFormatError, ReceiptError])
def test_every_decoder_error_is_an_enclavefl_error(error: type[Exception]) -> None:
    assert issubclass(error, EnclaveFLError)

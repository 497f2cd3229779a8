"""Sealed, crash-safe node checkpoints (DESIGN.md §4: sealed state).

After each round the node appends the round's signed receipt to a sealed log (enclave/receipt_log.py) and
writes the rest of its state, sealed with the TEE's key in authenticated chunks (tee/inside/seal_stream.py: the
node serves downloads of the model from this file, enclave/stored_model.py), atomically: a temporary file, fsync,
rename, fsync of the directory. A crash leaves either the old checkpoint or the new one, never half of one. The
checkpoint seals the log's position (records, bytes, hash of the last record), so a round costs the same whatever
the length of the chain, and the log cannot be cut, reordered, replayed or spliced under it. The host stores the
files but cannot read or alter them: a tampered, truncated, renamed or other-job checkpoint, or a log that is not
the one it sealed, is refused with `CheckpointError` and nothing is loaded.

Plaintext layout before sealing (version 2):

    b"EFLCKPT" | version (2) | metadata length (u32 BE) | metadata JSON | model safetensors | strategy safetensors

The metadata holds the position of the sealed log that holds the receipts ("receipt_log"), never the receipts
themselves. The seal's label carries the job digest, so a checkpoint of another job does not open.

A round closes in two phases (core/acknowledgement.py): its checkpoint is written with `pending` set, before
any owner sees its receipt. That checkpoint already holds the state after the round (model, receipt, accountant);
`pending` says the round still waits for its contributors' signatures, so a restarted node asks for them again and
releases exactly this aggregate, never a re-run of the round.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Final

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import decode_weights, encode_parts
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.crash_points import crash_point
from enclavefl.enclave.receipt_log import LOG_NAME, LogPosition, Receipt, ReceiptLog, fsync_directory, write_all
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.errors import CheckpointError, CodecError, SealingError
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.inside.seal import MAGIC as MAGIC_SEALED
from enclavefl.tee.inside.seal import STATE_SEALING_KEY, unseal
from enclavefl.tee.inside.seal_stream import STREAM_VERSION, SealedReader, seal_stream

MAGIC: Final = b"EFLCKPT"
VERSION: Final = 2  # 2: the receipts live in the sealed receipt log, the checkpoint seals its position
_LABEL_VERSION: Final = 1  # the seal's label: a version-1 checkpoint still opens, and is refused by its version byte
FILE_PATTERN: Final = re.compile(r"^checkpoint-(\d{8})\.sealed$")
ACKS_FORMAT: Final = "enclavefl/acknowledgements/v1"
_PREFIX: Final = struct.Struct(">7sBI")
# MRENCLAVE-bound, never MRSIGNER: the operator holds the signing key, so any enclave it signs would derive an
# MRSIGNER key and read the node's identity key from here (issue 10 §3). The price: a new build cannot resume
# an old build's job (docs/threat-model.md, docs/fault-tolerance.md).
SEALING_KEY_NAME: Final = STATE_SEALING_KEY


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRelease:
    """A sealed round not yet released: who must sign its receipt, and the summary released with it."""

    contributors: tuple[str, ...]  # sealed only: never leaves the enclave (receipts carry no identities)
    metrics: Mapping[str, float]
    rejected: Mapping[str, int]
    released_model_sha256: bytes  # the last released model's hash: what the status shows until the release
    evaluation: Mapping[str, float] = field(default_factory=dict)  # owners' held-out evaluation, released with it

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "contributors": sorted(self.contributors),
            "metrics": dict(self.metrics),
            "rejected": dict(self.rejected),
            "released_model_sha256": self.released_model_sha256.hex(),
        }
        if self.evaluation:  # absent when empty: checkpoints of jobs without evaluation keep their bytes
            out["evaluation"] = dict(self.evaluation)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> PendingRelease:
        contributors, metrics, rejected = raw["contributors"], raw["metrics"], raw["rejected"]
        evaluation = raw.get("evaluation", {})
        if not isinstance(contributors, list) or not all(isinstance(c, str) for c in contributors):
            raise TypeError("pending.contributors must be a list of names")
        if not isinstance(metrics, dict) or not isinstance(rejected, dict) or not isinstance(evaluation, dict):
            raise TypeError("pending.metrics, pending.rejected and pending.evaluation must be objects")
        return cls(
            contributors=tuple(contributors),
            metrics={str(k): float(v) for k, v in metrics.items()},
            rejected={str(k): int(v) for k, v in rejected.items()},
            released_model_sha256=bytes.fromhex(str(raw["released_model_sha256"])),
            evaluation={str(k): float(v) for k, v in evaluation.items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCheckpoint:
    """Everything a node needs to resume: the receipts chain head and the key that signs it included."""

    job_digest: bytes
    rounds_completed: int
    global_model: ModelWeights
    identity_key_der: bytes  # PKCS#8 private key; exists in plaintext only inside the enclave
    receipts: Sequence[Receipt] = ()  # (body, signature) per round, oldest first (a tuple, or a ChainPrefix)
    accountant_state: Mapping[str, object] = field(default_factory=dict)
    strategy_state: ModelWeights | None = None
    pending: PendingRelease | None = None  # the last round is sealed but waits for its signatures

    def to_parts(self, log: LogPosition) -> list[bytes | memoryview]:
        """The checkpoint's bytes as pieces; the model's tensors are views, not copies. The receipts are not
        written: `log`, the position of the sealed log that holds them, is."""
        model = encode_parts(self.global_model)
        strategy = encode_parts(self.strategy_state) if self.strategy_state is not None else []
        meta = {
            "job_digest": self.job_digest.hex(),
            "rounds_completed": self.rounds_completed,
            "identity_key_der": _b64(self.identity_key_der),
            "accountant_state": dict(self.accountant_state),
            "model_bytes": sum(len(memoryview(p).cast("B")) for p in model),
            "strategy_bytes": sum(len(memoryview(p).cast("B")) for p in strategy),
            "receipt_log": log.to_json(),
        }
        if self.pending is not None:
            meta["pending"] = self.pending.to_json()
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        return [_PREFIX.pack(MAGIC, VERSION, len(text)) + text, *model, *strategy]

    @classmethod
    def decode(cls, data: bytes | bytearray) -> tuple[NodeCheckpoint, LogPosition]:
        """The checkpoint (its receipts not yet read) and the position of the sealed log that holds them."""
        try:
            magic, version, meta_len = _PREFIX.unpack_from(data)
        except struct.error:
            raise CheckpointError("checkpoint is shorter than its fixed header") from None
        if magic != MAGIC or version != VERSION:
            raise CheckpointError(f"not a version-{VERSION} enclavefl checkpoint (magic {magic!r}, v{version})")
        start = _PREFIX.size
        try:
            meta = json.loads(data[start : start + meta_len])
            model_end = start + meta_len + int(meta["model_bytes"])
            strategy_end = model_end + int(meta["strategy_bytes"])
            if strategy_end != len(data):
                raise CheckpointError(f"checkpoint holds {len(data)} bytes, its metadata describes {strategy_end}")
            view = memoryview(data)  # slices of a bytearray would copy: the tensors are copied once, below
            model = decode_weights(view[start + meta_len : model_end])
            strategy = decode_weights(view[model_end:strategy_end]) if strategy_end > model_end else None
            log = LogPosition.from_json(meta["receipt_log"])
            checkpoint = cls(
                job_digest=bytes.fromhex(meta["job_digest"]),
                rounds_completed=int(meta["rounds_completed"]),
                global_model=model.copy(),
                identity_key_der=base64.b64decode(meta["identity_key_der"], validate=True),
                accountant_state=dict(meta["accountant_state"]),
                strategy_state=strategy.copy() if strategy is not None else None,
                pending=PendingRelease.from_json(meta["pending"]) if meta.get("pending") is not None else None,
            )
            return checkpoint, log
        except (KeyError, TypeError, ValueError, AttributeError, CodecError) as exc:
            raise CheckpointError(f"checkpoint metadata is malformed: {type(exc).__name__}: {exc}") from None


class CheckpointStore:
    """Writes and reads sealed checkpoints in a directory the host keeps (and cannot read)."""

    def __init__(self, directory: Path, *, sealing_key: bytes, job_digest: bytes, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.directory = directory
        self._key = sealing_key
        self._job_digest = job_digest
        self._label = f"enclavefl/checkpoint/v{_LABEL_VERSION}/{job_digest.hex()}"
        self._keep = keep
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._log = ReceiptLog(
            directory / LOG_NAME, sealing_key=sealing_key, label=f"enclavefl/receipt-log/v1/{job_digest.hex()}"
        )
        # What the log holds as of the newest checkpoint (None: not read yet) and its last receipt
        self._position: LogPosition | None = None
        self._last: Receipt | None = None
        self._prefixes: dict[str, bytes] = {}  # file name -> nonce prefix of the checkpoint sealed or read there

    def save(self, checkpoint: NodeCheckpoint) -> Path:
        """Append its new receipts to the log, then seal and write the rest atomically; older checkpoints beyond
        `keep` are removed. The receipts must extend those already in the log (CheckpointError otherwise)."""
        if checkpoint.job_digest != self._job_digest:
            raise CheckpointError("checkpoint belongs to another job than this store")
        position = self._log_position()
        receipts, known = checkpoint.receipts, position.records
        if len(receipts) < known or (known and receipts[known - 1] != self._last):
            raise CheckpointError(
                f"the receipts of round {checkpoint.rounds_completed} do not extend the {known} already in the log"
            )
        if len(receipts) > known:  # one record a round: the cost does not grow with the chain
            position = self._log.append(position, receipts[known:])
            crash_point("checkpoint-log-appended", checkpoint.rounds_completed)
        final = self.directory / f"checkpoint-{checkpoint.rounds_completed:08d}.sealed"
        tmp = self.directory / f".{final.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:  # sealed chunk by chunk: no model-sized buffer at round close, and downloads read it back in chunks
            prefix = seal_stream(self._key, checkpoint.to_parts(position), partial(write_all, fd), label=self._label)
            os.fsync(fd)
        finally:
            os.close(fd)
        crash_point("checkpoint-before-rename", checkpoint.rounds_completed)
        os.replace(tmp, final)
        fsync_directory(self.directory)
        self._position, self._last = position, receipts[-1] if receipts else None
        self._prefixes[final.name] = prefix
        for old in self.list()[: -self._keep]:
            old.unlink(missing_ok=True)  # older checkpoints name a prefix of the log: the ones kept still open
        return final

    def list(self) -> list[Path]:
        """Checkpoint files, oldest first (temporary files from interrupted writes are ignored)."""
        found = [p for p in self.directory.iterdir() if FILE_PATTERN.match(p.name)]
        return sorted(found, key=lambda p: p.name)

    def load_latest(self) -> NodeCheckpoint | None:
        """The newest checkpoint, or None when there is none. Raises CheckpointError if it does not open."""
        files = self.list()
        if not files:
            return None
        return self.load(files[-1])

    def load(self, path: Path) -> NodeCheckpoint:
        match = FILE_PATTERN.match(path.name)
        if match is None:
            raise CheckpointError(f"{path.name} is not a checkpoint file name")
        try:
            plaintext = self._plaintext(path)
        except SealingError as exc:
            raise CheckpointError(
                f"{path}: does not open for this job and enclave ({exc}); refusing to resume from it"
            ) from None
        checkpoint, position = NodeCheckpoint.decode(plaintext)
        if checkpoint.rounds_completed != int(match.group(1)):
            raise CheckpointError(
                f"{path.name} holds round {checkpoint.rounds_completed}: the file was renamed (rollback attempt?)"
            )
        if checkpoint.job_digest != self._job_digest:
            raise CheckpointError(f"{path.name} belongs to another job")
        if position.records != checkpoint.rounds_completed:
            raise CheckpointError(f"{path.name} does not name the {checkpoint.rounds_completed} receipt(s) of its log")
        receipts = self._log.read(position)
        self._position, self._last = position, receipts[-1] if receipts else None
        return replace(checkpoint, receipts=receipts)

    def open_model(self, path: Path, *, any_sealed: bool = False) -> StoredModel:
        """The global model inside `path`, a checkpoint this store wrote or loaded (`any_sealed`: or any this job's
        enclave sealed, for a caller that checks the model's hash), read back in authenticated chunks
        (enclave/stored_model.py); CheckpointError if the file is not that one or does not open."""
        fd = os.open(path, os.O_RDONLY)
        try:
            reader = SealedReader.of_file(self._key, fd, label=self._label)
            if not any_sealed and reader.prefix != self._prefixes.get(path.name):
                raise CheckpointError(f"{path.name} is not the checkpoint this node sealed under that name")
            prefix = bytes(reader.read(0, _PREFIX.size))
            magic, version, meta_len = _PREFIX.unpack(prefix)
            if magic != MAGIC or version != VERSION:
                raise CheckpointError(f"{path.name}: not a version-{VERSION} checkpoint")
            meta = json.loads(reader.read(_PREFIX.size, meta_len))
            rounds = int(meta["rounds_completed"])
            return StoredModel(
                fd=fd, reader=reader, offset=_PREFIX.size + meta_len, nbytes=int(meta["model_bytes"]), rounds=rounds
            )
        except (SealingError, KeyError, TypeError, ValueError, struct.error) as exc:
            os.close(fd)
            raise CheckpointError(f"{path.name}: the model does not open: {exc}") from None
        except BaseException:
            os.close(fd)
            raise

    def save_and_open(self, checkpoint: NodeCheckpoint) -> StoredModel:
        """`save`, then the saved model as downloads read it (the node's checkpoint sink)."""
        return self.open_model(self.save(checkpoint))

    def _plaintext(self, path: Path) -> bytes | bytearray:
        with path.open("rb") as f:
            if f.read(len(MAGIC_SEALED) + 1)[-1:] != bytes([STREAM_VERSION]):  # version 1: one GCM over the file
                return unseal(self._key, path.read_bytes(), label=self._label)
            reader = SealedReader.of_file(self._key, f.fileno(), label=self._label)
            self._prefixes[path.name] = reader.prefix
            return reader.read()

    def _log_position(self) -> LogPosition:
        """Where the next receipt goes: after those of the newest checkpoint (read once), or at 0 for a new job."""
        if self._position is None:
            files = self.list()
            if files:
                self.load(files[-1])
            else:
                self._position = LogPosition()  # anything in the file is a crash's leftover: the append drops it
        assert self._position is not None
        return self._position

    def save_acknowledgements(self, receipt: SignedReceipt, acks: Iterable[Acknowledgement]) -> Path:
        """Keep the owners' signatures over a sealed round's receipt, in the clear: they are public evidence.

        A restarted node that finds the round still pending reads them back (each verified under its owner's
        enrolled key) instead of waiting for every owner again. A host that withholds or alters the file only
        makes the node ask again; it cannot forge a signature.
        """
        data = {
            "format": ACKS_FORMAT,
            "round": receipt.receipt.round,
            "receipt_sha256": receipt.sha256.hex(),
            "signatures": {a.owner: _b64(a.signature) for a in acks if a.signature},
        }
        final = self.directory / f"acks-{receipt.receipt.round:08d}.json"
        tmp = self.directory / f".{final.name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, final)
        for old in sorted(self.directory.glob("acks-*.json"))[: -self._keep]:
            old.unlink(missing_ok=True)
        return final

    def load_acknowledgements(self, receipt: SignedReceipt) -> tuple[Acknowledgement, ...]:
        """The signatures kept for `receipt` (none if the file is missing, malformed or for another receipt)."""
        path = self.directory / f"acks-{receipt.receipt.round:08d}.json"
        try:
            raw = json.loads(path.read_text())
            if raw["format"] != ACKS_FORMAT or raw["receipt_sha256"] != receipt.sha256.hex():
                return ()
            return tuple(
                Acknowledgement(
                    owner=str(owner),
                    round=receipt.receipt.round,
                    receipt_sha256=receipt.sha256,
                    signature=base64.b64decode(sig, validate=True),
                )
                for owner, sig in dict(raw["signatures"]).items()
            )
        except (OSError, KeyError, TypeError, ValueError, AttributeError):
            return ()  # untrusted input: the node asks the owners again

    def cleanup_temporary(self) -> int:
        """Remove files left by writes interrupted by a crash; returns how many."""
        # bytes past the newest checkpoint's position in receipts.log are leftovers too: the next append drops them
        leftovers = [*self.directory.glob(".checkpoint-*.tmp"), *self.directory.glob(".acks-*.tmp")]
        for p in leftovers:
            p.unlink(missing_ok=True)
        return len(leftovers)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def open_checkpoint_store(directory: Path, *, tee: TeeBackend, job_digest: bytes, keep: int = 2) -> CheckpointStore:
    """The node's store in `directory`, sealed with the TEE's MRENCLAVE-bound key; leftovers of crashes removed."""
    store = CheckpointStore(directory, sealing_key=tee.sealing_key(SEALING_KEY_NAME), job_digest=job_digest, keep=keep)
    store.cleanup_temporary()
    return store

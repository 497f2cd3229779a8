"""Sealed checkpoints: atomic, resumable, and refused whole when tampered, renamed or from another job."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.errors import CheckpointError

KEY = bytes(range(16))
JOB = bytes([7]) * 32


def checkpoint(rounds: int = 3, *, job: bytes = JOB) -> NodeCheckpoint:
    return NodeCheckpoint(
        job_digest=job,
        rounds_completed=rounds,
        global_model=ModelWeights({"w": np.arange(6, dtype=np.float32).reshape(2, 3) * rounds}),
        identity_key_der=b"\x30\x82fake-der",
        receipts=tuple((f"body{i}".encode(), f"sig{i}".encode()) for i in range(rounds)),
        accountant_state={"epsilon": 1.5, "steps": rounds},
        strategy_state=ModelWeights({"m": np.ones(3, np.float64)}),
    )


def store(tmp_path: Path, *, key: bytes = KEY, job: bytes = JOB) -> CheckpointStore:
    return CheckpointStore(tmp_path / "state", sealing_key=key, job_digest=job)


def test_round_trip_restores_every_field(tmp_path: Path) -> None:
    s = store(tmp_path)
    original = checkpoint(3)

    s.save(original)
    loaded = s.load_latest()

    assert loaded is not None
    assert loaded.rounds_completed == 3
    assert loaded.global_model.sha256() == original.global_model.sha256()
    assert loaded.identity_key_der == original.identity_key_der
    assert loaded.receipts == original.receipts
    assert loaded.accountant_state == {"epsilon": 1.5, "steps": 3}
    assert loaded.strategy_state is not None
    np.testing.assert_array_equal(loaded.strategy_state["m"], np.ones(3))


def test_nothing_unsealed_reaches_disk(tmp_path: Path) -> None:
    s = store(tmp_path)
    path = s.save(checkpoint(1))

    data = path.read_bytes()

    assert b"fake-der" not in data and b"epsilon" not in data and b"body0" not in data
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_newest_is_loaded_and_only_keep_are_kept(tmp_path: Path) -> None:
    s = store(tmp_path)
    for r in range(1, 5):
        s.save(checkpoint(r))

    assert [p.name for p in s.list()] == ["checkpoint-00000003.sealed", "checkpoint-00000004.sealed"]
    latest = s.load_latest()
    assert latest is not None and latest.rounds_completed == 4


def test_empty_store_has_nothing_to_resume(tmp_path: Path) -> None:
    assert store(tmp_path).load_latest() is None


def test_flipped_byte_is_refused_whole(tmp_path: Path) -> None:
    s = store(tmp_path)
    path = s.save(checkpoint(2))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="does not open"):
        s.load_latest()


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    path = s.save(checkpoint(2))
    path.write_bytes(path.read_bytes()[:-10])

    with pytest.raises(CheckpointError):
        s.load_latest()


def test_renamed_older_checkpoint_is_refused_as_rollback(tmp_path: Path) -> None:
    s = CheckpointStore(tmp_path / "state", sealing_key=KEY, job_digest=JOB, keep=5)
    old = s.save(checkpoint(2))
    s.save(checkpoint(3))
    os.replace(old, old.with_name("checkpoint-00000009.sealed"))

    with pytest.raises(CheckpointError, match="renamed"):
        s.load_latest()


def test_other_job_or_other_key_does_not_open(tmp_path: Path) -> None:
    store(tmp_path).save(checkpoint(1))

    with pytest.raises(CheckpointError, match="does not open"):
        store(tmp_path, job=bytes(32)).load_latest()
    with pytest.raises(CheckpointError, match="does not open"):
        store(tmp_path, key=bytes(16)).load_latest()


def test_interrupted_write_leaves_previous_checkpoint_usable(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.save(checkpoint(1))
    (s.directory / ".checkpoint-00000002.sealed.999.tmp").write_bytes(b"half a checkpoint")

    latest = s.load_latest()

    assert latest is not None and latest.rounds_completed == 1
    assert s.cleanup_temporary() == 1


def test_checkpoint_of_another_job_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="another job"):
        store(tmp_path).save(checkpoint(1, job=bytes(32)))

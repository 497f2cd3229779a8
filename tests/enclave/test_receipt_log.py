"""The sealed receipt log: one record appended a round, and the host's edits of it refused at resume.

The host keeps `receipts.log` and can cut it, drop or swap records, put back an older copy or splice in records of
another history. Each attack is performed on the file a real store wrote; the node must refuse it with a
CheckpointError naming what is wrong, and load nothing. A crash at any byte of an append loses only that round.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.enclave.crash_points import install_crash_hook
from enclavefl.enclave.receipt_log import LOG_NAME, ChainPrefix, LogPosition
from enclavefl.errors import CheckpointError

KEY = bytes(range(16))
JOB = bytes([7]) * 32


def receipt(i: int, history: str = "body") -> tuple[bytes, bytes]:
    """Round i's receipt in `history` (another history: another 4-letter word, so its records are as long)."""
    return f"{history}{i}".encode(), f"sig{i}".encode()


def checkpoint(rounds: int, *, history: str = "body") -> NodeCheckpoint:
    return NodeCheckpoint(
        job_digest=JOB,
        rounds_completed=rounds,
        global_model=ModelWeights({"w": np.full(4, rounds, np.float32)}),
        identity_key_der=b"\x30\x82fake-der",
        receipts=tuple(receipt(i, history) for i in range(1, rounds + 1)),
    )


def store(directory: Path, *, key: bytes = KEY, job: bytes = JOB, keep: int = 2) -> CheckpointStore:
    return CheckpointStore(directory, sealing_key=key, job_digest=job, keep=keep)


def run(directory: Path, rounds: int, *, history: str = "body") -> CheckpointStore:
    s = store(directory)
    for r in range(rounds + 1):
        s.save(checkpoint(r, history=history))
    return s


def records(log: Path) -> list[bytes]:
    """The log's records as the host sees them: length-prefixed opaque blobs."""
    data, out, offset = log.read_bytes(), [], 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        out.append(data[offset : offset + 4 + length])
        offset += 4 + length
    return out


def test_receipts_are_appended_one_record_a_round_and_resume_whole(tmp_path: Path) -> None:
    s = run(tmp_path / "state", 5)
    log = tmp_path / "state" / LOG_NAME

    loaded = store(tmp_path / "state").load_latest()

    assert loaded is not None and loaded.receipts == checkpoint(5).receipts
    assert len(records(log)) == 5
    assert b"body1" not in log.read_bytes() and b"sig5" not in log.read_bytes()  # sealed, not only MACed
    assert [p.name for p in s.list()] == ["checkpoint-00000004.sealed", "checkpoint-00000005.sealed"]
    older = store(tmp_path / "state").load(s.list()[0])  # an older checkpoint names a prefix: it still opens
    assert older.receipts == checkpoint(4).receipts


def test_a_checkpoint_does_not_grow_with_the_chain(tmp_path: Path) -> None:
    s = store(tmp_path / "state", keep=1000)
    log = tmp_path / "state" / LOG_NAME
    sizes, appended = [], []
    for r in range(40):
        before = log.stat().st_size if log.exists() else 0
        sizes.append(s.save(checkpoint(r)).stat().st_size)
        appended.append((log.stat().st_size if log.exists() else 0) - before)

    # the metadata's numbers get wider (round 9 -> 10, log size 99 -> 100 ...), nothing else changes
    assert max(sizes[1:]) - min(sizes[1:]) <= 8
    assert appended[0] == 0 and len(set(appended[10:])) == 1  # one record a round, the same size at any length


def test_the_host_cutting_off_the_last_record_is_refused(tmp_path: Path) -> None:
    run(tmp_path / "state", 4)
    log = tmp_path / "state" / LOG_NAME
    log.write_bytes(b"".join(records(log)[:-1]))

    with pytest.raises(
        CheckpointError, match=r"receipts.log holds \d+ bytes, the sealed checkpoint covers .* cut short"
    ):
        store(tmp_path / "state").load_latest()


def test_the_host_dropping_a_middle_record_is_refused(tmp_path: Path) -> None:
    run(tmp_path / "state", 4)
    log = tmp_path / "state" / LOG_NAME
    kept = records(log)
    log.write_bytes(b"".join([kept[0], *kept[2:], kept[-1]]))  # same length, record 2 missing

    with pytest.raises(CheckpointError, match="record 2 does not open at its place"):
        store(tmp_path / "state").load_latest()


def test_the_host_swapping_two_records_is_refused(tmp_path: Path) -> None:
    run(tmp_path / "state", 4)
    log = tmp_path / "state" / LOG_NAME
    one, two, *rest = records(log)
    log.write_bytes(b"".join([two, one, *rest]))

    with pytest.raises(CheckpointError, match="record 1 does not open at its place"):
        store(tmp_path / "state").load_latest()


def test_the_host_replaying_an_older_sealed_log_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    s = run(state, 2)
    shutil.copy2(state / LOG_NAME, tmp_path / "log-after-round-2")  # the host's copy
    for r in (3, 4):
        s.save(checkpoint(r))
    shutil.copy2(tmp_path / "log-after-round-2", state / LOG_NAME)

    with pytest.raises(CheckpointError, match="cut short or replaced by an older copy"):
        store(state).load_latest()


def test_a_log_of_another_history_of_the_same_length_is_refused(tmp_path: Path) -> None:
    """Two copies of the enclave started from one sealed state diverge; the host pairs one's log with the other's
    checkpoint. Every record opens (each was sealed by this enclave for this place), the last one is not the one
    the checkpoint sealed."""
    run(tmp_path / "a", 3)
    run(tmp_path / "b", 3, history="fork")
    log, own, fork = tmp_path / "a" / LOG_NAME, records(tmp_path / "a" / LOG_NAME), records(tmp_path / "b" / LOG_NAME)

    log.write_bytes(b"".join(fork))
    with pytest.raises(CheckpointError, match=r"the last of its 3 record\(s\) is not the one the checkpoint sealed"):
        store(tmp_path / "a").load_latest()

    log.write_bytes(b"".join([*own[:2], fork[2]]))  # spliced: the fork's record 3 follows another record 2
    with pytest.raises(CheckpointError, match="record 3 does not open at its place"):
        store(tmp_path / "a").load_latest()

    log.write_bytes(b"".join(own))
    assert store(tmp_path / "a").load_latest() is not None  # the genuine log still opens: the attacks changed nothing


def test_records_of_another_job_or_key_do_not_open(tmp_path: Path) -> None:
    run(tmp_path / "state", 2)
    other = CheckpointStore(tmp_path / "other", sealing_key=bytes(16), job_digest=JOB)
    for r in range(3):
        other.save(checkpoint(r))
    shutil.copy2(tmp_path / "other" / LOG_NAME, tmp_path / "state" / LOG_NAME)

    with pytest.raises(CheckpointError, match="record 1 does not open at its place"):
        store(tmp_path / "state").load_latest()


def test_a_missing_log_is_refused(tmp_path: Path) -> None:
    run(tmp_path / "state", 2)
    (tmp_path / "state" / LOG_NAME).unlink()

    with pytest.raises(CheckpointError, match="holds 0 bytes"):
        store(tmp_path / "state").load_latest()


def test_receipts_that_do_not_extend_the_log_are_not_saved(tmp_path: Path) -> None:
    s = run(tmp_path / "state", 2)

    with pytest.raises(CheckpointError, match="do not extend the 2 already in the log"):
        s.save(checkpoint(3, history="fork"))
    with pytest.raises(CheckpointError, match="do not extend"):
        s.save(checkpoint(1))


def test_a_version_1_checkpoint_is_refused_by_its_version(tmp_path: Path) -> None:
    from enclavefl.enclave import checkpoint as module
    from enclavefl.tee.inside.seal import seal

    s = store(tmp_path / "state")
    plaintext = bytearray(b"".join(bytes(p) for p in checkpoint(0).to_parts(LogPosition())))
    plaintext[7] = 1
    label = f"enclavefl/checkpoint/v1/{JOB.hex()}"
    (tmp_path / "state" / "checkpoint-00000000.sealed").write_bytes(seal(KEY, bytes(plaintext), label=label))

    with pytest.raises(CheckpointError, match=f"not a version-{module.VERSION} enclavefl checkpoint"):
        s.load_latest()


@pytest.mark.parametrize("with_temporary_checkpoint", [False, True])
def test_a_crash_at_any_byte_of_an_append_loses_only_that_round(
    tmp_path: Path, with_temporary_checkpoint: bool
) -> None:
    """Round 4's record is written byte by byte up to where the crash stops it; round 3's checkpoint is the newest.
    Whatever the byte, the restarted store resumes at round 3 and round 4, redone, saves and resumes cleanly."""
    run(tmp_path / "whole", 4)
    full = (tmp_path / "whole" / LOG_NAME).read_bytes()
    run(tmp_path / "base", 3)
    start = (tmp_path / "base" / LOG_NAME).stat().st_size
    assert len(full) > start  # round 4's record: every byte of it is a crash point below
    for cut in range(start, len(full) + 1):
        state = tmp_path / f"crash-{cut}"
        shutil.copytree(tmp_path / "base", state)
        crashed = store(state)  # the node before the crash: appends round 4, then dies at `cut`
        crashed.load_latest()

        def die(point: str, round_index: int, log: Path = state / LOG_NAME, cut: int = cut) -> None:
            if point == "checkpoint-log-appended":
                with log.open("r+b") as file:
                    file.truncate(cut)
                raise KeyboardInterrupt  # the crash: nothing after this point runs

        install_crash_hook(die)
        try:
            with pytest.raises(KeyboardInterrupt):
                crashed.save(checkpoint(4))
        finally:
            install_crash_hook(None)
        if with_temporary_checkpoint:
            (state / ".checkpoint-00000004.sealed.1.tmp").write_bytes(b"half a checkpoint")

        restarted = store(state)
        restarted.cleanup_temporary()
        resumed = restarted.load_latest()
        assert resumed is not None and resumed.rounds_completed == 3 and resumed.receipts == checkpoint(3).receipts
        restarted.save(checkpoint(4))  # round 4 redone
        again = store(state).load_latest()
        assert again is not None and again.receipts == checkpoint(4).receipts, cut
        shutil.rmtree(state)


def test_a_chain_prefix_is_a_fixed_view_of_a_list_that_grows() -> None:
    """What a round's checkpoint holds instead of a copy of the chain (enclave/sealing.py)."""
    items = [receipt(1), receipt(2)]
    view = ChainPrefix(items, 2)
    items.append(receipt(3))

    assert len(view) == 2 and list(view) == [receipt(1), receipt(2)] and view[-1] == receipt(2)
    assert view[1:] == (receipt(2),) and view == (receipt(1), receipt(2)) and view != (receipt(1),)
    with pytest.raises(IndexError):
        view[2]
    with pytest.raises(ValueError):
        ChainPrefix(items, 4)

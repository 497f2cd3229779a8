"""A masked-mode owner's durable record of the rounds it uploaded to and answered an unmasking request for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from enclavefl.core.receipt_checks import ReceiptTracker
from enclavefl.errors import ReceiptError, UnmaskAlreadyAnswered
from enclavefl.owner.owner_state import PersistentReceiptTracker, UnmaskRecord

DIGEST = hashlib.sha256(b"job").digest()


def test_an_answered_round_is_refused_after_the_owner_restarts(tmp_path: Path) -> None:
    record = UnmaskRecord.beside(PersistentReceiptTracker.open(tmp_path, job_digest=DIGEST), job_digest=DIGEST)
    assert record.record_upload(3) is False  # the first upload to round 3: the round's own seed
    assert record.record_upload(3) is True  # a second one (a re-attempt): fresh randomness
    record.record_answer(3)
    with pytest.raises(UnmaskAlreadyAnswered, match="round 3"):
        record.record_answer(3)

    restarted = UnmaskRecord.beside(PersistentReceiptTracker.open(tmp_path, job_digest=DIGEST), job_digest=DIGEST)
    with pytest.raises(UnmaskAlreadyAnswered, match="no further part"):
        restarted.check_may_take_part(3)
    with pytest.raises(UnmaskAlreadyAnswered):
        restarted.record_upload(3)
    restarted.check_may_take_part(4)  # other rounds are untouched
    assert restarted.record_upload(4) is False


def test_without_durable_state_the_record_lives_in_memory(tmp_path: Path) -> None:
    record = UnmaskRecord.beside(ReceiptTracker(job_digest=DIGEST), job_digest=DIGEST)
    record.record_answer(1)
    with pytest.raises(UnmaskAlreadyAnswered):
        record.check_may_take_part(1)
    assert record.path is None and list(tmp_path.iterdir()) == []


def test_another_jobs_or_a_damaged_record_is_refused(tmp_path: Path) -> None:
    tracker = PersistentReceiptTracker.open(tmp_path, job_digest=DIGEST)
    UnmaskRecord.beside(tracker, job_digest=DIGEST).record_answer(1)
    path = tracker.path.with_name(f"unmask-{DIGEST.hex()[:16]}.json")
    other = hashlib.sha256(b"other job").digest()
    with pytest.raises(ReceiptError, match="not this job"):
        UnmaskRecord(job_digest=other, path=path)
    path.write_text("{not json")
    with pytest.raises(ReceiptError, match="unreadable"):
        UnmaskRecord(job_digest=DIGEST, path=path)

"""A data owner's commitment salts survive its restart, open its commitment in the receipt, and stay private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from enclavefl.core.receipt_checks import check_update_included
from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.update_message import commitment_of_payload, new_commitment_salt
from enclavefl.errors import ReceiptError, UpdateOmitted
from enclavefl.owner.commitment_log import CommitmentLog

JOB = bytes(range(32))
PAYLOAD = b"the owner's update"


def test_openings_survive_a_restart_and_prove_inclusion(tmp_path: Path) -> None:
    salt = new_commitment_salt()
    commitment = commitment_of_payload(salt=salt, payload=PAYLOAD)
    log = CommitmentLog.open(tmp_path, job_digest=JOB)
    log.record(3, salt=new_commitment_salt(), commitment=bytes(32))  # an earlier attempt of round 3
    log.record(3, salt=salt, commitment=commitment)
    receipt = RoundReceipt(
        job_digest=JOB,
        round=3,
        previous_sha256=bytes(32),
        global_model_sha256=bytes(32),
        contributions=1,
        update_commitments=(commitment,),
    )

    reopened = CommitmentLog.open(tmp_path, job_digest=JOB)

    openings = reopened.openings(3)
    assert [o.salt for o in openings][-1] == salt and len(openings) == 2
    check_update_included(receipt, commitment_of_payload(salt=openings[-1].salt, payload=PAYLOAD))
    with pytest.raises(UpdateOmitted):
        check_update_included(receipt, commitment_of_payload(salt=openings[0].salt, payload=PAYLOAD))
    assert stat.S_IMODE(reopened.path.stat().st_mode) == 0o600  # the salts are as private as the updates


def test_another_job_s_or_a_damaged_log_is_refused(tmp_path: Path) -> None:
    log = CommitmentLog.open(tmp_path, job_digest=JOB)
    log.record(1, salt=new_commitment_salt(), commitment=bytes(32))
    other = tmp_path / "other"
    other.mkdir()
    other_job = bytes(32)
    (other / f"commitments-{other_job.hex()[:16]}.json").write_text(log.path.read_text())

    with pytest.raises(ReceiptError, match="not this job's commitment log"):
        CommitmentLog.open(other, job_digest=other_job)  # a log copied under another job's name
    log.path.write_text(log.path.read_text().replace('"salt": "', '"salt": "zz'))
    with pytest.raises(ReceiptError, match="unreadable commitment log"):
        CommitmentLog.open(tmp_path, job_digest=JOB)

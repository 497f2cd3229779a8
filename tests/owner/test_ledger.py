"""The privacy ledger composes heterogeneous jobs exactly, never loses or half-writes an entry under SIGKILL,
and notices a ledger that is missing or older than the owner's receipt memory instead of starting afresh."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dp_accounting import ComposedDpEvent, GaussianDpEvent, SelfComposedDpEvent
from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant
from dp_tables import dp_job

from enclavefl.core.job import JobSpec
from enclavefl.errors import LedgerError, LifetimeBudgetExceeded
from enclavefl.owner.data_owner_main import DataOwnerSetup, admit_job
from enclavefl.owner.ledger import LEDGER_FILE, PrivacyLedger
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

SITE = SitePolicy(lifetime_epsilon=1e6, lifetime_delta=1e-6)


def test_heterogeneous_jobs_compose_as_dp_accounting_composes_them(tmp_path: Path) -> None:
    ledger = PrivacyLedger.open(tmp_path)
    jobs = [dp_job(rounds=3, noise_multiplier=1.0), dp_job(rounds=7, noise_multiplier=4.0)]

    for job in jobs:
        ledger.charge_job(dataclass_renamed(job, job.name + str(job.rounds)), SITE)

    reference = RdpAccountant()
    reference.compose(
        ComposedDpEvent(
            [
                SelfComposedDpEvent(GaussianDpEvent(1.0), 3),
                SelfComposedDpEvent(GaussianDpEvent(4.0), 7),
            ]
        )
    )
    assert ledger.spent(SITE) == pytest.approx(reference.get_epsilon(1e-6), rel=1e-12)


def dataclass_renamed(job: JobSpec, name: str) -> JobSpec:
    return dataclasses.replace(job, name=name)


def test_a_job_is_charged_once_and_a_job_over_the_budget_is_refused_with_the_numbers(tmp_path: Path) -> None:
    ledger = PrivacyLedger.open(tmp_path)
    job = dp_job(rounds=5, noise_multiplier=1.0)
    first = ledger.charge_job(job, SITE)
    again = ledger.charge_job(job, SITE)  # a restarted owner joining the same job
    tight = SitePolicy(lifetime_epsilon=first * 1.5, lifetime_delta=1e-6)

    with pytest.raises(LifetimeBudgetExceeded, match=r"from [0-9.]+ to [0-9.]+ .* over your site policy"):
        ledger.charge_job(dataclass_renamed(job, "another"), tight)

    assert again == first
    assert [j.name for j in PrivacyLedger.open(tmp_path).jobs] == [job.name]


def test_an_upload_for_a_job_never_charged_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="never charged"):
        PrivacyLedger.open(tmp_path).record_upload(dp_job(rounds=2), 1, bytes(32))


def test_a_missing_ledger_beside_receipt_memory_is_noticed_not_reset(tmp_path: Path) -> None:
    job = dp_job(rounds=2)
    (tmp_path / f"receipts-{job.digest().hex()[:16]}.json").write_text("{}")

    with pytest.raises(LedgerError, match="is missing: it lacks job"):
        PrivacyLedger.open(tmp_path)
    assert not (tmp_path / LEDGER_FILE).exists()


def test_a_ledger_restored_from_before_a_job_is_noticed(tmp_path: Path) -> None:
    ledger = PrivacyLedger.open(tmp_path)
    ledger.charge_job(dp_job(rounds=2), SITE)
    old = (tmp_path / LEDGER_FILE).read_bytes()
    later = dataclass_renamed(dp_job(rounds=2), "later")
    ledger.charge_job(later, SITE)
    (tmp_path / f"receipts-{later.digest().hex()[:16]}.json").write_text("{}")

    (tmp_path / LEDGER_FILE).write_bytes(old)  # the host (or a backup tool) puts back the older file

    with pytest.raises(LedgerError, match="older than your receipt memory"):
        PrivacyLedger.open(tmp_path)


def test_a_corrupt_ledger_is_refused_not_reset(tmp_path: Path) -> None:
    (tmp_path / LEDGER_FILE).write_text('{"format": "enclavefl/privacy-ledger/v1", "jobs": {"zz": {}}}')

    with pytest.raises(LedgerError, match="unreadable privacy ledger"):
        PrivacyLedger.open(tmp_path)


WRITER = """
import sys, dataclasses
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from dp_tables import dp_job
from enclavefl.owner.ledger import PrivacyLedger
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials
site = SitePolicy(lifetime_epsilon=1e9)
ledger = PrivacyLedger.open(Path(sys.argv[1]))
for j in range(1000):
    job = dataclasses.replace(dp_job(rounds=3), name=f"{sys.argv[3]}-{j}")
    ledger.charge_job(job, site)
    for r in (1, 2, 3):
        ledger.record_upload(job, r, bytes([r]) * 32)
    print(j, flush=True)
"""


@pytest.mark.slow
def test_sigkill_while_writing_leaves_a_readable_ledger_with_every_completed_entry(tmp_path: Path) -> None:
    tests_dir = str(Path(__file__).parents[1])
    for attempt in range(4):
        prefix = f"attempt{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), tests_dir, prefix], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        completed = [proc.stdout.readline() for _ in range(3 + attempt)]  # some jobs fully recorded
        time.sleep(0.01 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        ledger = PrivacyLedger.open(tmp_path)  # raises if the file were torn

        names = {j.name for j in ledger.jobs}
        assert {f"{prefix}-{int(line)}" for line in completed} <= names  # nothing completed was lost
        assert all(len(j.uploads) <= 3 for j in ledger.jobs)  # nothing recorded twice or torn
        assert json.loads((tmp_path / LEDGER_FILE).read_text())["format"] == "enclavefl/privacy-ledger/v1"


# --- every job joined with state kept is recorded (no site policy needed) -----------------------


def _setup(tmp_path: Path, job: JobSpec, site: SitePolicy | None) -> DataOwnerSetup:
    return DataOwnerSetup(
        address="127.0.0.1:1",
        name="alice",
        job=job,
        policy=AttestationPolicy.strict(),
        credentials=OwnerCredentials.generate("alice"),
        state_dir=tmp_path,
        site_policy=site,
    )


def test_a_job_joined_without_a_site_policy_is_recorded_so_a_budget_set_later_counts_it(tmp_path: Path) -> None:
    first = dp_job(rounds=4, noise_multiplier=1.0)
    admit_job(_setup(tmp_path, first, None))  # default flags: no site policy
    (tmp_path / f"receipts-{first.digest().hex()[:16]}.json").write_text("{}")  # it ran and kept receipts

    later = dataclass_renamed(dp_job(rounds=4, noise_multiplier=1.0), "later")
    alone = PrivacyLedger.open(tmp_path / "fresh").spent(SITE, extra=later)
    tight = SitePolicy(lifetime_epsilon=alone * 1.2, lifetime_delta=1e-6)  # fits `later` alone, not both

    with pytest.raises(LifetimeBudgetExceeded, match="over your site policy"):
        admit_job(_setup(tmp_path, later, tight))
    assert [j.name for j in PrivacyLedger.open(tmp_path).jobs] == [first.name]


def test_a_job_without_dp_makes_the_lifetime_epsilon_unbounded_and_later_budgets_say_why(tmp_path: Path) -> None:
    plain = dataclasses.replace(dp_job(rounds=2), dp=None, name="no-dp")
    ledger = PrivacyLedger.open(tmp_path)

    assert ledger.charge_job(plain, None) == float("inf")
    assert [(j.name, j.noise_multiplier) for j in PrivacyLedger.open(tmp_path).jobs] == [("no-dp", 0.0)]
    with pytest.raises(LifetimeBudgetExceeded, match=r"job\(s\) without DP, 'no-dp': unbounded"):
        ledger.charge_job(dp_job(rounds=2), SITE)

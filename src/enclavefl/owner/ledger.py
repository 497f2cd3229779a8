"""A data owner's lifetime privacy ledger: every job it joined and every update it sent, across all jobs.

    ledger = PrivacyLedger.open(Path("state"))           # LedgerError if missing or older than the receipt memory
    ledger.charge_job(job, site)                         # LifetimeBudgetExceeded before anything is sent
    ledger.charge_job(job, None)                         # no site budget: the job is still recorded
    ledger.record_upload(job, round_index, commitment)      # durably, before the update leaves
    ledger.spent(site)                                   # epsilon at site.lifetime_delta over every job

Composition: a job is charged in full when the owner joins it (its `rounds` Gaussian rounds at its noise
multiplier), because the owner cannot know in advance how many rounds will be released; a job it joined
before is not charged again. Every job is a Gaussian mechanism on a sum whose sensitivity is its own clip
norm, so in units of that clip norm job j is N(0, sigma_j^2) composed rounds_j times; jobs with different
sigmas are composed with dp-accounting (`ComposedDpEvent`, exact in RDP and PLD) and read at the site
policy's lifetime delta, whatever the jobs' own deltas. The ledger is written atomically under a lock, so
two jobs joined at once cannot both squeeze under the budget.

Every job an owner joins while keeping state is recorded, with or without a site budget and with or without
DP: a job without DP is recorded with noise multiplier 0 and makes the lifetime epsilon unbounded from then on
(its updates left the site with no privacy bound, and no later budget can take that back). So an owner who
adds a `lifetime_epsilon` to its site policy later is told the truth about what it already spent, instead of
finding a ledger that lacks the jobs its receipts show.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from enclavefl.core.durable import write_atomically
from enclavefl.core.job import JobSpec
from enclavefl.errors import LedgerError, LifetimeBudgetExceeded
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.privacy.accountant import scheduled_epsilon
from enclavefl.privacy.epsilon import make_accountant
from enclavefl.privacy.params import DpParams

if TYPE_CHECKING:  # dp-accounting and its scipy cost ~1 s at start: imported only when a ledger is charged
    import dp_accounting

FORMAT: Final = "enclavefl/privacy-ledger/v1"
LEDGER_FILE: Final = "privacy-ledger.json"
RECEIPT_MEMORY_GLOB: Final = "receipts-*.json"  # owner/owner_state.py's files, one per job


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerJob:
    digest: str
    name: str
    noise_multiplier: float
    delta: float
    rounds: int  # charged in full at join
    accountant: str
    joined_at: int
    uploads: tuple[tuple[int, float, str], ...]  # (round, epsilon after it as the receipt states, commitment)


class PrivacyLedger:
    """The ledger file in an owner's state directory (`privacy-ledger.json`)."""

    def __init__(self, directory: Path, jobs: dict[str, dict[str, Any]]) -> None:
        self.directory = directory
        self.path = directory / LEDGER_FILE
        self._jobs = jobs

    @classmethod
    def open(cls, directory: Path) -> PrivacyLedger:
        """Load the ledger; a missing one starts empty only if the owner has no receipt memory either."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ledger = cls(directory, cls._read(directory))
        ledger._check_not_older_than_receipt_memory()
        return ledger

    @property
    def jobs(self) -> tuple[LedgerJob, ...]:
        ordered = sorted(self._jobs.items(), key=lambda item: (item[1]["joined_at"], item[1].get("sequence", 0)))
        return tuple(_job(digest, entry) for digest, entry in ordered)

    def spent(self, site: SitePolicy, *, extra: JobSpec | None = None) -> float:
        """Lifetime epsilon at the site policy's delta over every charged job (and `extra`, if given); infinite
        once any job without DP was joined."""
        jobs = self.jobs
        if any(j.noise_multiplier == 0.0 for j in jobs):
            return float("inf")
        events = [_event(j.noise_multiplier, j.rounds) for j in jobs]
        if extra is not None and extra.digest().hex() not in self._jobs:
            if extra.dp is None:
                return float("inf")
            dp = _dp(extra)
            events.append(_event(dp.noise_multiplier, extra.rounds))
        if not events:
            return 0.0
        import dp_accounting

        accountant = make_accountant("pld" if site.lifetime_accountant == "pld" else "rdp")
        accountant.compose(dp_accounting.ComposedDpEvent(events))
        return float(accountant.get_epsilon(site.lifetime_delta))

    def charge_job(self, job: JobSpec, site: SitePolicy | None) -> float:
        """Record `job` at its full cost unless already charged; LifetimeBudgetExceeded if that passes the site
        policy's lifetime budget (no budget, or no site policy: recorded, never refused).

        Returns the lifetime epsilon with the job charged (infinite once a job without DP was joined).
        """
        chosen = site if site is not None else SitePolicy()
        with self._locked():
            budget = chosen.lifetime_epsilon
            after: float | None = None
            if budget is not None:
                if job.dp is None:
                    _dp(job)  # raises: a job without DP has unbounded epsilon
                before = self.spent(chosen)
                after = self.spent(chosen, extra=job)
                if after > budget:
                    raise LifetimeBudgetExceeded(
                        f"joining job {job.name!r} would bring your lifetime epsilon from {before:.4g} to "
                        f"{after:.4g} (delta {chosen.lifetime_delta:g}), over your site policy's lifetime_epsilon "
                        f"{budget:g}{_unbounded_hint(self.jobs)}; nothing was sent"
                    )
            digest = job.digest().hex()
            if digest not in self._jobs:
                dp = DpParams.from_mapping(job.dp) if job.dp is not None else None
                self._jobs[digest] = {
                    "name": job.name,
                    "noise_multiplier": dp.noise_multiplier if dp is not None else 0.0,
                    "delta": dp.delta if dp is not None else 0.0,
                    "rounds": job.rounds,
                    "accountant": dp.accountant if dp is not None else "none",
                    "joined_at": int(time.time()),
                    "uploads": [],
                    "sequence": len(self._jobs),
                }
                self._write()
            return after if after is not None else self.spent(chosen)

    def record_upload(self, job: JobSpec, round_index: int, commitment: bytes) -> None:
        """Durably note an upload of `job`'s round before it is sent; the job must have been charged."""
        with self._locked():
            entry = self._jobs.get(job.digest().hex())
            if entry is None:
                raise LedgerError(f"job {job.name!r} was never charged to the ledger; refusing to upload for it")
            epsilon = scheduled_epsilon(_dp(job), round_index) if job.dp is not None else float("inf")
            entry["uploads"].append([round_index, epsilon, commitment.hex()])
            self._write()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the directory's ledger; reloads the file so another process's writes count."""
        with open(self.directory / f".{LEDGER_FILE}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._jobs = self._read(self.directory)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self) -> None:
        data = {"format": FORMAT, "jobs": self._jobs}
        write_atomically(self.path, json.dumps(data, sort_keys=True, indent=1).encode())

    @staticmethod
    def _read(directory: Path) -> dict[str, dict[str, Any]]:
        path = directory / LEDGER_FILE
        if not path.exists():
            return {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw["format"] != FORMAT:
                raise ValueError(f"format {raw['format']!r}")
            jobs: dict[str, dict[str, Any]] = raw["jobs"]
            for digest, entry in jobs.items():
                _job(digest, entry)  # validates every field
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise LedgerError(f"{path}: unreadable privacy ledger ({why}); not resetting it") from None
        return jobs

    def _check_not_older_than_receipt_memory(self) -> None:
        """Every job the owner holds receipts for must be in the ledger: a restored or deleted ledger is noticed."""
        remembered = sorted(
            p.name.removeprefix("receipts-").removesuffix(".json") for p in self.directory.glob(RECEIPT_MEMORY_GLOB)
        )
        missing = [prefix for prefix in remembered if not any(d.startswith(prefix) for d in self._jobs)]
        if missing:
            state = "missing" if not self.path.exists() else "older than your receipt memory"
            raise LedgerError(
                f"{self.path} is {state}: it lacks job(s) {', '.join(missing)} that this state directory holds "
                "receipts for. Restore the ledger from your backup; starting afresh would forget privacy already spent"
            )


def _dp(job: JobSpec) -> DpParams:
    if job.dp is None:
        raise LifetimeBudgetExceeded(f"job {job.name!r} has no DP: its epsilon is unbounded; nothing was sent")
    return DpParams.from_mapping(job.dp)


def _unbounded_hint(jobs: tuple[LedgerJob, ...]) -> str:
    without_dp = [j.name for j in jobs if j.noise_multiplier == 0.0]
    if not without_dp:
        return ""
    return f" (your ledger holds job(s) without DP, {', '.join(repr(n) for n in without_dp)}: unbounded)"


def _event(noise_multiplier: float, rounds: int) -> dp_accounting.DpEvent:
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)


def _job(digest: str, entry: dict[str, Any]) -> LedgerJob:
    bytes.fromhex(digest)
    uploads = tuple((int(r), float(e), str(h)) for r, e, h in entry["uploads"])
    return LedgerJob(
        digest=digest,
        name=str(entry["name"]),
        noise_multiplier=float(entry["noise_multiplier"]),
        delta=float(entry["delta"]),
        rounds=int(entry["rounds"]),
        accountant=str(entry["accountant"]),
        joined_at=int(entry["joined_at"]),
        uploads=uploads,
    )

"""The data owner's API: verify the node, then train every round on data that never leaves this process.

    with DataOwnerClient(node="host:7000", job="job.toml", policy="policy.toml",
                         key="keys/alice.key", cert="keys/alice.pem") as alice:
        print(alice.state_dir)                            # durable state, by default this user's for this key
        report = alice.run(task, "alice.safetensors")     # or TensorData / StreamedData / a path the task reads

Files are read and checked when the client is made (ConfigError leaves); `run` checks the task against the job
and one example of the data, checks the job against the site policy and the privacy ledger, attests the node
(an AttestationError leaf, and nothing sent, on mismatch), then contributes until the job ends. `cancel()`
(from another thread, or a signal handler) stops the run at its next wait with `Cancelled`.

Durable state is the default: the rounds this owner signed, the receipt chain, its commitment salts and its
privacy ledger live in `state_dir`, by default `$XDG_STATE_HOME/enclavefl/data-owners/<certificate fingerprint>`
(owner/state_dir.py), locked per job while `run` runs (StateDirInUse for a second process). A restarted owner
reads it back and refuses to upload a round it signed to a rolled-back node. `insecure_no_state=True` keeps
nothing (INSECURE: it warns, and the rollback attack of docs/threat-model.md works against it).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from enclavefl.core.job import JobSpec
from enclavefl.errors import Cancelled, ConfigError
from enclavefl.owner.model_owner_files import require_readable
from enclavefl.owner.notices import policy_warning, state_warning
from enclavefl.owner.preflight import load_owner_data
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.task import Task
from enclavefl.task.optional_torch import require_torch
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.verified import VerifiedEnclave

if TYPE_CHECKING:  # the owner's process (owner/data_owner_main.py) trains with torch: loaded when a client is made
    from enclavefl.owner.data_owner_loop import DataOwnerReport
    from enclavefl.owner.data_owner_main import DataOwnerSetup

PathLike = str | os.PathLike[str]
LineSink = Callable[[str], None]


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


class DataOwnerClient:
    """One data owner's session with one node: `run(task, data)` returns a `DataOwnerReport`."""

    def __init__(
        self,
        *,
        node: str,
        job: JobSpec | PathLike,
        policy: AttestationPolicy | PathLike,
        key: PathLike,
        cert: PathLike,
        name: str | None = None,
        site_policy: SitePolicy | PathLike | None = None,
        state_dir: PathLike | None = None,
        insecure_no_state: bool = False,
        connect_timeout: float = 120.0,
        pccs_url: str | None = None,
        on_line: LineSink | None = None,
        on_attested: Callable[[VerifiedEnclave], None] | None = None,
    ) -> None:
        """Read and check the job, policy, key and certificate (ConfigError leaves), offline.

        `site_policy`: the owner's own limits on any job (and its lifetime privacy budget, kept in `state_dir`).
        `state_dir`: where signed rounds, receipts, commitment salts and the ledger survive restarts (default: this
        user's directory for the certificate's key). `insecure_no_state`: keep none (INSECURE; warns).
        `on_line`: receives progress lines (local losses, retries); default: silent. `on_attested`: hears the
        node's verified claims before anything is sent.
        """
        require_torch("enclavefl.DataOwnerClient")
        require_readable(key=Path(key), cert=Path(cert))
        from enclavefl.owner.data_owner_main import load_owner_files

        self.setup: DataOwnerSetup = load_owner_files(
            address=node,
            job=job if isinstance(job, JobSpec) else Path(job),
            policy=policy if isinstance(policy, AttestationPolicy) else Path(policy),
            key=Path(key),
            cert=Path(cert),
            name=name,
            state_dir=_path(state_dir),
            insecure_no_state=insecure_no_state,
            connect_timeout=connect_timeout,
            site_policy=site_policy
            if isinstance(site_policy, SitePolicy) or site_policy is None
            else Path(site_policy),
            pccs_url=pccs_url,
        )
        self.on_line = on_line
        self.on_attested = on_attested
        self._prepared: DataOwnerSetup | None = None
        self.verified: VerifiedEnclave | None = None  # the node's verified claims, once `run` attested it
        self._cancel = threading.Event()
        if insecure_no_state:
            warnings.warn(state_warning(self.name, None) or "", UserWarning, stacklevel=2)

    @property
    def name(self) -> str:
        return self.setup.name

    @property
    def job(self) -> JobSpec:
        return self.setup.job

    @property
    def state_dir(self) -> Path | None:
        """Where this owner's durable state lives (None only with `insecure_no_state`)."""
        return self.setup.state_dir

    def warnings(self) -> list[str]:
        """What to tell the user before running: an insecure policy, no durable state (`insecure_no_state`)."""
        found = (policy_warning(self.name, self.setup.policy), state_warning(self.name, self.setup.state_dir))
        return [w for w in (*found, self._evaluation_warning()) if w is not None]

    def _evaluation_warning(self) -> str | None:
        """Said before running: held-out data the job never asks for, or a job asking for figures we cannot give."""
        every = self.setup.job.evaluate_every
        held_out = self._prepared.held_out if self._prepared is not None else None
        if every and held_out is None:
            return (
                f"[{self.name}] note: the job asks for owners' evaluation every {every} rounds; without --eval-data "
                "you send none (its figures are released only if K other owners send theirs)"
            )
        if not every and held_out is not None:
            return f"[{self.name}] note: the job sets no evaluate_every: your --eval-data is not used"
        return None

    def prepare(self, task: Task, data: Any, *, held_out: Any = None) -> None:
        """The pre-flight alone, offline: load the data, check the task's model is the job's and one example runs
        (TaskError, ModelSchemaMismatch, DataMismatch name the problem). `run()` then uses this task and data.

        `data`: TensorData, StreamedData, anything the task reads itself, or a path (str or Path) that the task's
        `load_data` reads (a safetensors file with `x` and `y` when the task has none). `held_out`: the same kinds,
        your held-out split: in the rounds the job's `evaluate_every` names, the model each round starts from is
        evaluated on it and the figures go with your update (the node releases only means over >= K owners).
        """
        from enclavefl.owner.data_owner_main import with_task

        loaded, where = self._load(task, data, "data")
        kept, kept_where = self._load(task, held_out, "held_out") if held_out is not None else (None, "held_out")
        self._prepared = with_task(self.setup, task, loaded, data_path=where, held_out=kept, held_out_path=kept_where)

    @staticmethod
    def _load(task: Task, data: Any, label: str) -> tuple[Any, str]:
        if isinstance(data, str | os.PathLike):
            return load_owner_data(task, data), str(data)
        return data, label

    def run(self, task: Task | None = None, data: Any = None) -> DataOwnerReport:
        """Pre-flight (unless `prepare` did it), admit the job (SitePolicyRefused, LifetimeBudgetExceeded), attest
        the node (AttestationError leaf: nothing sent), then contribute to every round until the job ends."""
        from enclavefl.owner.data_owner_main import run_enrolled_data_owner

        if task is not None:
            self.prepare(task, data)
        if self._prepared is None:
            raise ConfigError("run(task, data): no task given and none prepared")
        self._check_cancelled()

        def attested(verified: VerifiedEnclave) -> None:
            self.verified = verified
            if self.on_attested is not None:
                self.on_attested(verified)

        return run_enrolled_data_owner(self._prepared, report=self.on_line, on_attested=attested, sleep=self._wait)

    def cancel(self) -> None:
        """Stop a running `run` at its next wait (it raises Cancelled); safe from any thread."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _wait(self, seconds: float) -> None:
        if self._cancel.wait(seconds):
            self._check_cancelled()

    def _check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"[{self.name}] cancelled: nothing more is sent to the node")

    def __enter__(self) -> DataOwnerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()  # a run still going in another thread stops at its next wait

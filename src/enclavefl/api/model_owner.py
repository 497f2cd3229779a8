"""The model owner's API: attest the node, submit the initial model, watch the rounds, download (verified).

    with ModelOwnerClient.connect("host:7000", job="job.toml", policy="policy.toml",
                                  key="keys/model-owner.key", cert="keys/model-owner.pem") as mo:
        mo.submit("init.safetensors")
        for summary in mo.watch():                 # one RoundSummary per released round: aggregates only
            print(summary.round, summary.metrics)
        for record in mo.rounds(evaluate=central_evaluation(task, test_data),     # or: each released model
                                loggers=[TensorBoardLogger(Path("runs"))]):      # evaluated by the model owner
            print(record.round, record.train, record.central)
        final = mo.download("model.safetensors")   # the receipt chain and the final hash verified first

`connect` verifies the node's attestation against the policy before anything is sent (AttestationError leaf).
The receipts the model owner verified are remembered on disk by default (`state_dir`, default
`$XDG_STATE_HOME/enclavefl/model-owners/<certificate fingerprint>`: owner/state_dir.py), so a node that comes back
with an older receipt chain is refused (RollbackDetected) even by a new process. One client at a time writes that
memory (a per-job lock); another one, e.g. `job status` while `job watch` runs, checks against it read-only.
`insecure_no_state=True` keeps no memory (INSECURE).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from enclavefl.core.codec import ModelBytes
from enclavefl.core.job import JobSpec
from enclavefl.core.jobfile import load_job, read_initial_model
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ConfigError
from enclavefl.owner.metrics_history import RoundRecord
from enclavefl.owner.model_owner import FinalModel, ModelOwnerSession
from enclavefl.owner.model_owner_files import download_final_model, require_readable
from enclavefl.owner.notices import policy_warning
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.owner.round_follower import CentralEvaluation, MetricsLogger, follow_rounds
from enclavefl.owner.state_dir import MODEL_OWNER, StateLock, resolve_state_dir, try_hold_owner_state
from enclavefl.tee.verify.pccs import PccsCollateralSource
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.transport.api import NodeStatus
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.tls import split_address

PathLike = str | os.PathLike[str]


class ModelOwnerClient:
    """The model owner's control plane on one attested node."""

    def __init__(
        self, session: ModelOwnerSession, *, state_dir: Path | None = None, lock: StateLock | None = None
    ) -> None:
        self.session = session
        self.state_dir = state_dir  # the receipt memory's directory (None: INSECURE, none kept)
        self._lock = lock  # held while this client writes the memory; None when another client does (read-only)

    @classmethod
    def connect(
        cls,
        node: str,
        *,
        job: JobSpec | PathLike,
        policy: AttestationPolicy | PathLike,
        key: PathLike,
        cert: PathLike,
        state_dir: PathLike | None = None,
        insecure_no_state: bool = False,
        pccs_url: str | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> ModelOwnerClient:
        """Read the files (ConfigError leaves), attest the node (AttestationError leaf) and join as model owner.

        `state_dir`: where the verified receipts are remembered (default: this user's directory for the
        certificate's key); `insecure_no_state`: remember nothing. `on_line` hears a warning when the policy
        accepts something insecure, or when no state is kept.
        """
        split_address(node)
        spec = job if isinstance(job, JobSpec) else load_job(Path(job))
        if isinstance(policy, AttestationPolicy):
            chosen = policy
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # announced through on_line, in one line
                chosen = load_policy(Path(policy))
        require_readable(key=Path(key), cert=Path(cert))
        credentials = OwnerCredentials.load(Path(key), Path(cert))
        try:
            collateral = PccsCollateralSource(pccs_url) if pccs_url is not None else None
        except ValueError as exc:
            raise ConfigError(f"--pccs-url: {exc}") from None
        warning = policy_warning("model owner", chosen)
        if warning is not None and on_line is not None:
            on_line(warning)
        kept = resolve_state_dir(
            None if state_dir is None else Path(state_dir),
            certificate_pem=credentials.certificate_pem,
            role=MODEL_OWNER,
            insecure_no_state=insecure_no_state,
        )
        if kept is None and on_line is not None:
            on_line(
                "[model owner] WARNING: INSECURE: --insecure-no-state: the receipts you verify are not remembered, "
                "so a node restarted from older state is not recognised as a rollback"
            )
        held = None if kept is None else try_hold_owner_state(kept, job_digest=spec.digest(), role=MODEL_OWNER)
        lock = held if isinstance(held, StateLock) else None
        tracker = (
            None
            if kept is None
            else PersistentReceiptTracker.open(kept, job_digest=spec.digest(), read_only=lock is None)
        )
        try:
            session = ModelOwnerSession.connect(
                node, job=spec, policy=chosen, credentials=credentials, tracker=tracker, collateral=collateral
            )
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        client = cls(session, state_dir=kept, lock=lock)
        if tracker is not None:
            try:
                session.receipts()  # the chain must extend what this model owner verified before (rollback)
            except BaseException:
                client.close()
                raise
        return client

    @property
    def job(self) -> JobSpec:
        return self.session.job

    def submit(self, initial_model: ModelWeights | PathLike) -> str:
        """Send the initial model (its hash must be the job's); returns its weights digest. The node starts."""
        weights = initial_model if isinstance(initial_model, ModelWeights) else read_initial_model(Path(initial_model))
        return self.session.submit_initial_model(weights)

    def status(self) -> NodeStatus:
        return self.session.status()

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]:
        """One summary per released round after `after_round`, as the node releases them, until the job ends."""
        return self.session.watch(after_round=after_round)

    def rounds(
        self,
        *,
        evaluate: CentralEvaluation | None = None,
        loggers: Iterable[MetricsLogger] = (),
        after_round: int = 0,
        on_line: Callable[[str], None] | None = None,
    ) -> Iterator[RoundRecord]:
        """One RoundRecord per released round after `after_round`, until the job ends.

        `evaluate(round, weights) -> metrics` (Flower's `evaluate_fn`; `central_evaluation(task, data)` builds one)
        runs on each released model, fetched and checked against the digest the round's summary names; its
        numbers are the record's `central` metrics. Each logger (TensorBoardLogger, MlflowLogger, ...) hears
        every record; the caller closes them.
        """
        return follow_rounds(self, evaluate=evaluate, loggers=loggers, after_round=after_round, on_line=on_line)

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        """The model released after `round_index`, while the node still holds it (until the next release)."""
        return self.session.node.client.released_model_bytes(round_index)

    def receipts(self) -> tuple[RoundReceipt, ...]:
        """The node's signed receipt chain, verified (and checked against what this client saw before)."""
        return self.session.receipts()

    def download(self, out: PathLike | None = None, *, receipts_out: PathLike | None = None) -> FinalModel:
        """The final model, accepted only if the receipt chain verifies and its last receipt names its hash.

        With `out`, also write the model (safetensors) and the attested receipt chain (default: OUT with
        .receipts.json), re-verifiable by anyone (`enclavefl receipts verify`, `verify_receipts`).
        """
        if out is None:
            return self.session.download_final()
        target = Path(out)
        chain = Path(receipts_out) if receipts_out is not None else target.with_suffix(".receipts.json")
        for path in (target, chain):  # before downloading: a wrong path is a typo, found before the transfer
            if not path.absolute().parent.is_dir():
                raise ConfigError(f"{path}: its directory does not exist")
        return download_final_model(self.session, out=target, receipts_out=chain)

    def close(self) -> None:
        self.session.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ModelOwnerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

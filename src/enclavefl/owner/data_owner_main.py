"""A data owner as its own process: attest the node, join, train every round on a local file, check receipts.

    python -m enclavefl.owner.data_owner_main --node HOST:PORT --job job.toml --policy policy.toml \\
        --task MODULE:ATTR --data alice.safetensors --key alice.key --cert alice.pem [--name alice] [--state DIR]

`enclavefl data-owner run` is the same with a friendlier front (typer); this entry imports no CLI libraries,
so many owner processes start quickly. `--data` is a safetensors file with exactly the tensors `x` (inputs)
and `y` (targets), or a path the task's own `load_data` reads (streamed in mini-batches). `--task` names a
`Task` (or a function returning one): `package.module:ATTR` or `path/to/file.py:ATTR`. Exit status: the table
in `enclavefl.core.exit_codes` (`--help` prints it). The owner's durable state (the rounds it signed, the receipt
chain, its commitment salts, its privacy ledger) lives in `--state DIR`, by default a directory of this user's
derived from the certificate (owner/state_dir.py), locked for the job while the owner runs.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from enclavefl.core.clock import Clock
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import JobSpec
from enclavefl.core.jobfile import load_job
from enclavefl.errors import AttestationError, ConfigError, EnclaveFLError, StateDirInUse, TaskError
from enclavefl.owner.attested import AttestedNode, connect_data_owner
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.commitment_log import CommitmentLog
from enclavefl.owner.data_owner import DataOwner, LocalReport
from enclavefl.owner.data_owner_args import build_parser
from enclavefl.owner.data_owner_loop import DataOwnerReport, run_data_owner
from enclavefl.owner.ledger import PrivacyLedger
from enclavefl.owner.notices import (
    describe_enclave,
    describe_refusal,
    describe_state,
    describe_stop,
    format_rounds,
    policy_warning,
    state_warning,
)
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.owner.preflight import check_task_fits, load_owner_data, load_task
from enclavefl.owner.reconnect import Reconnect, RetryNotice, reconnect_to_node
from enclavefl.owner.site_limits import check_noise_placement
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.owner.state_dir import DATA_OWNER, hold_owner_state, resolve_state_dir
from enclavefl.privacy.epsilon import verify_epsilon_schedule
from enclavefl.task import Task
from enclavefl.task.api import warm_up
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.verify.pccs import PccsCollateralSource
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.tee.verify.verified import VerifiedEnclave
from enclavefl.transport.api import JobState
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.tls import split_address


@dataclass(frozen=True, slots=True, kw_only=True)
class DataOwnerSetup:
    """Everything one data owner process needs, read from its files."""

    address: str
    name: str
    job: JobSpec
    policy: AttestationPolicy
    credentials: OwnerCredentials
    task: Task | None = None  # set by `with_task`, after the pre-flight check
    data: Any = None  # TensorData, StreamedData, or what the task's load_data returned
    held_out: Any = None  # the owner's held-out split (job.evaluate_every): evaluated, never trained on
    state_dir: Path | None = None  # durable state (owner/state_dir.py); None only when opted out (INSECURE)
    connect_timeout: float = 120.0  # keep trying an unreachable node this long (at start and after a crash)
    site_policy: SitePolicy | None = None  # the owner's own limits on the job, and its lifetime privacy budget
    collateral: CollateralSource | None = None  # fetch collateral ourselves (our PCCS) instead of the node's


def load_setup(
    *,
    address: str,
    job: Path,
    policy: Path,
    task: str,
    data: Path,
    key: Path,
    cert: Path,
    name: str | None = None,
    state_dir: Path | None = None,
    insecure_no_state: bool = False,
    connect_timeout: float = 120.0,
    site_policy: Path | None = None,
    pccs_url: str | None = None,
) -> DataOwnerSetup:
    """Read and check the owner's files, offline; a ConfigError leaf names the file and what is wrong."""
    setup = load_owner_files(
        address=address,
        job=job,
        policy=policy,
        key=key,
        cert=cert,
        name=name,
        state_dir=state_dir,
        insecure_no_state=insecure_no_state,
        connect_timeout=connect_timeout,
        site_policy=site_policy,
        pccs_url=pccs_url,
    )
    loaded_task = load_task(task)
    return with_task(setup, loaded_task, load_owner_data(loaded_task, data), data_path=data)


def load_owner_files(
    *,
    address: str,
    job: Path | JobSpec,
    policy: Path | AttestationPolicy,
    key: Path,
    cert: Path,
    name: str | None = None,
    state_dir: Path | None = None,
    insecure_no_state: bool = False,
    connect_timeout: float = 120.0,
    site_policy: Path | SitePolicy | None = None,
    pccs_url: str | None = None,
) -> DataOwnerSetup:
    """Everything but the task and the data (`with_task` adds them): the job, policy, keys and limits, offline.

    `state_dir` None: this user's default state directory for the certificate; `insecure_no_state`: none at all.
    """
    split_address(address)  # a malformed --node is a configuration error, found before anything else
    credentials = OwnerCredentials.load(key, cert)
    job_spec = job if isinstance(job, JobSpec) else load_job(job)
    chosen = name or certificate_common_name(credentials.certificate_pem)
    enrolled = {o.name for o in job_spec.data_owners}
    if enrolled and chosen not in enrolled:
        raise ConfigError(
            f"--name {chosen!r} is not a data owner of job {job_spec.name!r} ({', '.join(sorted(enrolled))})"
        )
    if isinstance(policy, AttestationPolicy):
        loaded_policy = policy
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an INSECURE policy is announced by the caller (`policy_warning`)
            loaded_policy = load_policy(policy)
    loaded_policy.require_usable()
    site = SitePolicy.load(site_policy) if isinstance(site_policy, Path) else site_policy
    kept = resolve_state_dir(
        state_dir, certificate_pem=credentials.certificate_pem, role=DATA_OWNER, insecure_no_state=insecure_no_state
    )
    if site is not None and site.lifetime_epsilon is not None and kept is None:
        raise ConfigError(
            f"{site_policy} sets lifetime_epsilon, which needs your privacy ledger: drop --insecure-no-state"
        )
    try:
        collateral = PccsCollateralSource(pccs_url) if pccs_url is not None else None
    except ValueError as exc:
        raise ConfigError(f"--pccs-url: {exc}") from None
    return DataOwnerSetup(
        address=address,
        name=chosen,
        job=job_spec,
        policy=loaded_policy,
        credentials=credentials,
        state_dir=kept,
        connect_timeout=connect_timeout,
        site_policy=site,
        collateral=collateral,
    )


def with_task(
    setup: DataOwnerSetup,
    task: Task,
    data: Any,
    *,
    data_path: Path | str = "--data",
    held_out: Any = None,
    held_out_path: Path | str = "--eval-data",
) -> DataOwnerSetup:
    """Pre-flight, before the node is contacted: the task's model is the job's, one example of the data (and of
    the held-out data, if any) runs."""
    check_task_fits(task, job=setup.job, data=data, data_path=data_path)
    if held_out is not None:
        check_task_fits(task, job=setup.job, data=held_out, data_path=held_out_path)
    return dataclasses.replace(setup, task=task, data=data, held_out=held_out)


def run_enrolled_data_owner(
    setup: DataOwnerSetup,
    *,
    report: LocalReport | None = None,
    on_attested: Callable[[VerifiedEnclave], None] | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DataOwnerReport:
    """Lock this job's state directory (StateDirInUse when this owner already runs the job from it) and say where
    it is; check the job against the site policy and the privacy ledger (SitePolicyRefused,
    LifetimeBudgetExceeded), attest and join (AttestationError leaf on mismatch), all before anything is sent;
    then contribute until the job ends, recording each upload in the ledger before it leaves."""
    if setup.task is None:
        raise ConfigError("no task: call with_task(setup, task, data) first")
    if setup.state_dir is None:  # --insecure-no-state: nothing to lock, nothing remembered
        return _run_enrolled(setup, report=report, on_attested=on_attested, clock=clock, sleep=sleep)
    with hold_owner_state(setup.state_dir, job_digest=setup.job.digest()):  # StateDirInUse: one process per job
        if report is not None:
            report(f"[{setup.name}] {describe_state(setup.state_dir)}")
        return _run_enrolled(setup, report=report, on_attested=on_attested, clock=clock, sleep=sleep)


def _run_enrolled(
    setup: DataOwnerSetup,
    *,
    report: LocalReport | None,
    on_attested: Callable[[VerifiedEnclave], None] | None,
    clock: Clock | None,
    sleep: Callable[[float], None],
) -> DataOwnerReport:
    if setup.task is None:
        raise ConfigError("no task: call with_task(setup, task, data) first")
    ledger = admit_job(setup)

    def connect() -> AttestedNode:
        return connect_data_owner(
            setup.address,
            name=setup.name,
            job=setup.job,
            policy=setup.policy,
            credentials=setup.credentials,
            clock=clock,
            collateral=setup.collateral,
        )

    def on_retry(notice: RetryNotice) -> None:
        if report is not None:
            report(f"[{setup.name}] {setup.address}: {notice.describe()}")

    warm(setup, report)  # before joining: round 1 then takes as long as the others
    reconnect = Reconnect(connect=connect, give_up_after_seconds=setup.connect_timeout, on_retry=on_retry)
    node = reconnect_to_node(reconnect, sleep=sleep)
    if on_attested is not None:
        on_attested(node.verified)
    commitments = (
        CommitmentLog.open(setup.state_dir, job_digest=setup.job.digest()) if setup.state_dir is not None else None
    )
    tracker = (
        PersistentReceiptTracker.open(setup.state_dir, job_digest=setup.job.digest())
        if setup.state_dir is not None
        else None
    )
    owner = DataOwner(
        name=setup.name,
        task=setup.task,
        data=setup.data,
        job=setup.job,
        report=report,
        commitment_log=commitments,
        before_upload=None if ledger is None else lambda r, c: ledger.record_upload(setup.job, r, c),
        chain=ReceiptChainView(job_digest=setup.job.digest(), tracker=tracker),
        held_out=setup.held_out,
    )
    try:
        return run_data_owner(owner, node, reconnect=reconnect, sleep=sleep)
    finally:
        owner.attested().client.close()  # after a reconnect this is the newest connection


def warm(setup: DataOwnerSetup, report: LocalReport | None) -> None:
    """One throwaway training step (task/api.py warm_up), said in the log; a task whose train() fails stops
    here, before the node is contacted (TaskError)."""
    if setup.task is None:
        raise ConfigError("no task: call with_task(setup, task, data) first")
    started = time.monotonic()
    try:
        warmed = warm_up(setup.task, setup.data, setup.job.train)
    except Exception as exc:
        raise TaskError(f"the task's train() raised {type(exc).__name__}: {exc}") from None
    if report is not None and warmed:
        report(
            f"[{setup.name}] warmed up before joining: one training step on a throwaway model "
            f"({time.monotonic() - started:.2f} s), so round 1 runs as fast as the others"
        )


def admit_job(setup: DataOwnerSetup) -> PrivacyLedger | None:
    """The owner's own checks of the job, before any contact with the node; the ledger when it keeps one."""
    verify_epsilon_schedule(setup.job)
    if setup.site_policy is not None:
        setup.site_policy.check_job(setup.job, setup.policy)
    else:  # secure by default: without a site policy nothing opts in to noise added after unmasking
        check_noise_placement(None, setup.job)
    if setup.state_dir is None:
        return None
    # With state kept, every job is recorded, with or without a site policy: a budget set later then counts it.
    ledger = PrivacyLedger.open(setup.state_dir)
    ledger.charge_job(setup.job, setup.site_policy)
    return ledger


def certificate_common_name(certificate_pem: bytes) -> str:
    names = x509.load_pem_x509_certificate(certificate_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ConfigError("the certificate has no common name: pass --name")
    return str(names[0].value)


def exit_status(report: DataOwnerReport) -> ExitCode:
    return ExitCode.OK if report.final_state is JobState.FINISHED else ExitCode.FAILED


def describe_report(name: str, report: DataOwnerReport) -> str:
    head = report.receipt_head
    chain = f"receipt chain verified to round {head.round}" if head is not None else "no receipt verified"
    refused = ""
    if report.refused:
        reasons = Counter(reason for _, reason in report.refused)
        refused = f"; refused in rounds {format_rounds([r for r, _ in report.refused])} ({dict(reasons)})"
    if report.skipped:  # a job with cohorts: rounds the enclave drew others for
        refused += f"; outside the cohort of rounds {format_rounds(report.skipped)}"
    return (
        f"[{name}] job {report.final_state.value}: {report.final_message}; contributed to "
        f"{len(set(report.contributed))} rounds ({format_rounds(report.contributed)}){refused}; {chain}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    # ...but say when an attestation refusal that may be transient (clock skew, stale collateral) is retried.
    for name in ("enclavefl.owner.attested", "enclavefl.owner.data_owner_loop"):  # attestation; the round loop
        logging.getLogger(name).setLevel(logging.WARNING)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        setup = load_setup(
            address=args.node,
            job=args.job,
            policy=args.policy,
            task=args.task,
            data=args.data,
            key=args.key,
            cert=args.cert,
            name=args.name,
            state_dir=args.state,
            insecure_no_state=args.insecure_no_state,
            connect_timeout=args.connect_timeout,
            pccs_url=args.pccs_url,
        )
    except (EnclaveFLError, ValueError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    for warning in (policy_warning(setup.name, setup.policy), state_warning(setup.name, setup.state_dir)):
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)
    try:
        report = run_enrolled_data_owner(
            setup, report=say, on_attested=lambda v: say(f"[{setup.name}] {describe_enclave(v)}")
        )
    except AttestationError as exc:
        print(
            f"[{setup.name}] attestation refused, nothing was sent: {describe_refusal(exc, setup.policy)}",
            file=sys.stderr,
        )
        return ExitCode.ATTESTATION_REFUSED
    except TaskError as exc:  # the warm-up's training step failed: nothing was sent
        print(f"[{setup.name}] error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except StateDirInUse as exc:  # this owner already runs this job: nothing was sent
        print(f"[{setup.name}] error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.IN_USE
    except EnclaveFLError as exc:
        print(f"[{setup.name}] stopped: {describe_stop(exc)}", file=sys.stderr)
        return ExitCode.REFUSED
    except KeyboardInterrupt:
        resume = f"to continue (your state stays in {setup.state_dir})" if setup.state_dir is not None else "to rejoin"
        print(f"[{setup.name}] interrupted; run the same command again {resume}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    say(describe_report(setup.name, report))
    return exit_status(report)


if __name__ == "__main__":
    sys.exit(main())

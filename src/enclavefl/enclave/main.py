"""The aggregator's entry point, as the Gramine manifest runs it inside the enclave.

    python -m enclavefl.enclave.main --job FILE --state DIR --listen HOST:PORT --collateral FILE [--rpc-workers N]

It loads the job spec (in its canonical form, core/job_canonical.py), starts the node on the attested key, waits
for the model owner's initial model, runs every round, prints one line per round and exits with a status from
`enclavefl.core.exit_status` (`--help` names them; what each means is docs/cli.md's table, which `enclavefl node
serve --help` prints). It makes no outbound connection: the collateral that goes with its quotes is read from FILE,
which the untrusted host agent (`enclavefl node agent`) keeps fresh. Enclave-sized on purpose: argparse, no torch,
typer or rich. The INSECURE simulated enclave is not reachable from here (enclave/ never imports tee.insecure): use
`enclavefl node serve --tee insecure-simulation`, which runs the same `serve_job`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from enclavefl.core.exit_status import NODE_EXIT_CODES, ExitCode
from enclavefl.core.job import JobSpec
from enclavefl.core.job_canonical import load_canonical_job
from enclavefl.core.messages import RoundSummary, format_round_summary
from enclavefl.core.model_source import ModelSource
from enclavefl.enclave.checkpoint import open_checkpoint_store
from enclavefl.enclave.malloc_tuning import return_freed_memory_to_the_os
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.strategies import check_job_fits_enclave
from enclavefl.errors import ConfigError, EnclaveFLError, PortInUse
from enclavefl.tee.backend import REPORT_DATA_SIZE, TeeBackend
from enclavefl.tee.collateral import PLATFORM_QUOTE_PREFIX, CachedCollateralSource, FileCollateralSource
from enclavefl.tee.inside.gramine import GramineBackend
from enclavefl.transport.api import JobState, NodeStatus
from enclavefl.transport.limits import NodeLimits
from enclavefl.transport.tls import split_address

_ENDED = (JobState.FINISHED, JobState.FAILED)
FINAL_DOWNLOAD_GRACE_SECONDS = 120.0  # time for a final-model download under way to finish before the node exits


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    """Where the node listens and how long it stays up once the job has ended."""

    host: str = "127.0.0.1"
    port: int = 7443  # 0: the OS picks a free port (see `port_file`)
    state_dir: Path | None = None  # sealed checkpoints; a node restarted on the same directory resumes
    port_file: Path | None = None  # "HOST:PORT" is written here once the node listens
    # After the job ended the node keeps serving status, receipts and the final model until the model owner
    # downloaded it (at most `linger_seconds`), then until every data owner was told (at most `grace_seconds`).
    linger_seconds: float = 600.0
    grace_seconds: float = 3.0
    memory_limit_bytes: int | None = None  # refuse jobs whose rounds would not fit (robust rules hold every update)
    rpc_workers: int = 4  # the gRPC server's work threads (waiting calls hold none); sgx.max_threads follows it
    limits: NodeLimits = field(default_factory=NodeLimits)  # streams, watchers, Attest rate, session lifetime


class ServedNode(AggregatorNode):
    """An AggregatorNode that notes when the final model was handed out, so its process knows it may exit."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.final_model_served = threading.Event()

    def final_model_bytes(self) -> ModelSource:
        payload = super().final_model_bytes()
        self.final_model_served.set()
        return payload


def serve_job(
    *,
    job: JobSpec,
    tee: TeeBackend,
    options: ServeOptions,
    on_started: Callable[[AggregatorNode], None] | None = None,
    on_round: Callable[[RoundSummary], None] | None = None,
    stop: threading.Event | None = None,
    on_unfetched: Callable[[], None] | None = None,
) -> NodeStatus:
    """Serve `job` until it ends (or `stop` is set), linger for the model owner's download; return the status."""
    stop = stop or threading.Event()
    checkpoints = None
    if options.state_dir is not None:
        options.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        checkpoints = open_checkpoint_store(options.state_dir, tee=tee, job_digest=job.digest())
    node = ServedNode(
        job=job,
        tee=tee,
        on_round=on_round,
        checkpoints=checkpoints,
        memory_limit_bytes=options.memory_limit_bytes,
    )
    node.serve_grpc(host=options.host, port=options.port, max_workers=options.rpc_workers, limits=options.limits)
    node.start()
    try:
        if options.port_file is not None:
            write_port_file(options.port_file, node.address)
        if on_started is not None:
            on_started(node)
        status = node.wait(timeout=0.5)
        while status.job_state not in _ENDED and not stop.is_set():
            status = node.wait(timeout=0.5)
        if status.job_state is JobState.FINISHED:
            deadline = time.monotonic() + options.linger_seconds
            while not node.final_model_served.is_set() and not stop.is_set() and time.monotonic() < deadline:
                node.final_model_served.wait(0.2)
            if not node.final_model_served.is_set() and not stop.is_set() and on_unfetched is not None:
                on_unfetched()
        if status.job_state in _ENDED and not stop.is_set():
            # Until every enrolled data owner saw the end and fetched the whole chain (they long-poll, so at
            # once), at most grace_seconds: an owner that is away does not keep the process up.
            node.owners_done.wait(options.grace_seconds)
        return node.node_status()
    finally:
        # `final_model_served` is set when the download starts: a big model may still be streaming, and a stop
        # with a short grace cut it (the model owner lost the final model of a 38 MiB job on a loaded machine).
        # In-flight calls get FINAL_DOWNLOAD_GRACE_SECONDS; the stop returns as soon as they are done.
        node.stop(grace=FINAL_DOWNLOAD_GRACE_SECONDS if node.final_model_served.is_set() else 1.0)


def write_port_file(path: Path, address: str) -> None:
    """Write "HOST:PORT" atomically, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(address + "\n")
    os.replace(tmp, path)


def _start_state(status: NodeStatus) -> str:
    if status.job_state is JobState.AWAITING_MODEL:
        return "waiting for the model owner's initial model"
    # Anything but waiting at start means the node resumed from its sealed state.
    said = status.job_message if status.job_message.startswith("resumed") else f"resumed: {status.job_message}"
    return f"{said} ({status.rounds_completed}/{status.rounds_total} rounds done)"


def _resume_hint(status: NodeStatus, options: ServeOptions) -> str:
    """Whether and how the job goes on after this node stopped."""
    if options.state_dir is None:
        return (
            "the job cannot be resumed: this node kept no state, and data owners refuse a node that restarts "
            "behind them. Start a new job (a new job spec every party agrees to)"
        )
    return (
        f"the job can be resumed: start the node again on the same state directory ({options.state_dir}); it "
        f"continues after round {status.rounds_completed} and the data owners reconnect by themselves"
    )


def _unfetched_warning(options: ServeOptions) -> str:
    """Said when --linger ran out before anyone downloaded the final model."""
    waited = f"WARNING: nobody downloaded the final model within --linger {options.linger_seconds:g} s"
    if options.state_dir is None:
        return f"{waited}; this node kept no state (--ephemeral), so the final model is gone when it exits"
    return (
        f"{waited}; it is kept sealed in {options.state_dir}: start the node again on that state directory (the "
        "same `node serve` command) to serve it, then `enclavefl job download`"
    )


def format_end(status: NodeStatus) -> str:
    return f"job {status.job_state.value}: {status.job_message}"


# --- the command line -----------------------------------------------------------------------
def _exit_statuses() -> str:
    """The statuses this entry point returns, by number and name; their meanings are printed outside the enclave."""
    codes = sorted({ExitCode.OK, ExitCode.CONFIG, *NODE_EXIT_CODES})
    named = ", ".join(f"{int(code)} {code.name}" for code in codes)
    return f"Exit status: {named} (what each means: `enclavefl node serve --help`, docs/cli.md)."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m enclavefl.enclave.main",
        description="Run the enclavefl aggregator node (the secure worker) for one job.",
        epilog=_exit_statuses(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--job",
        type=Path,
        required=True,
        help="the job spec in its canonical form (JSON: what its digest hashes; a release's job/job.json, which "
        "`enclavefl enclave assemble` writes from job/job.toml)",
    )
    parser.add_argument("--state", type=Path, default=None, help="directory for sealed checkpoints")
    parser.add_argument("--listen", default="127.0.0.1:7443", help="HOST:PORT to listen on (port 0: any free)")
    parser.add_argument(
        "--tee", choices=("gramine", "insecure-simulation"), default="gramine", help="TEE backend (default gramine)"
    )
    parser.add_argument("--collateral", type=Path, default=None, help="DCAP collateral JSON the host agent keeps")
    parser.add_argument(
        "--rpc-workers",
        type=int,
        default=4,
        help="threads for the node's RPC work: status reads, signature checks, quotes (default 4; calls that wait "
        "hold none)",
    )
    parser.add_argument("--attestation-root", type=Path, default=Path("/dev/attestation"), help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, default=None, help="write HOST:PORT here once listening")
    parser.add_argument("--linger", type=float, default=600.0, help="seconds to wait for the final download")
    parser.add_argument("--memory-limit-mib", type=int, default=None, help="refuse jobs whose rounds need more")
    parser.add_argument(
        "--enclave-mib",
        type=int,
        default=None,
        help="the enclave's signed size (the manifest passes sgx.enclave_size): refuse at start a job it cannot hold",
    )
    return parser


def gramine_backend(*, collateral: Path | None, attestation_root: Path) -> GramineBackend:
    """The real SGX backend; the collateral comes from a file the host agent keeps fresh (no network here)."""
    if collateral is None:
        raise ConfigError(
            "--collateral FILE: the Gramine backend hands out the DCAP collateral (TCB info, QE identity, CRLs) "
            "with its quote; `enclavefl node agent` fetches it from the PCCS outside the enclave and keeps FILE "
            "fresh. Intel signs it and verifiers check it, so the untrusted carrier is fine"
        )
    cached = CachedCollateralSource(FileCollateralSource(collateral))  # one file read a minute, not one per Attest
    return GramineBackend(collateral=cached, root=attestation_root)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.tee == "insecure-simulation":
        print(
            "error: the enclave entry point runs only the real backend (--tee gramine). For an INSECURE "
            "simulated node run: enclavefl node serve --tee insecure-simulation --platform-dir DIR",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    try:
        host, port = split_address(args.listen)
        job = load_canonical_job(args.job)
        if not 1 <= args.rpc_workers <= 1024:
            raise ConfigError(f"--rpc-workers must be 1..1024, got {args.rpc_workers}")
        if args.enclave_mib is not None:  # before any quote or socket: a job that cannot fit fails now, not mid-round
            check_job_fits_enclave(job, enclave_bytes=args.enclave_mib << 20, rpc_workers=args.rpc_workers)
        tee = gramine_backend(collateral=args.collateral, attestation_root=args.attestation_root)
        # For the host agent, which fetches this platform's collateral (the line binds nothing; see collateral.py).
        print(f"{PLATFORM_QUOTE_PREFIX}{tee.quote(bytes(REPORT_DATA_SIZE)).hex()}", flush=True)
    except EnclaveFLError as exc:
        return _refused(exc, ExitCode.CONFIG)
    memory_limit = args.memory_limit_mib * 1024 * 1024 if args.memory_limit_mib is not None else None
    options = ServeOptions(
        host=host,
        port=port,
        state_dir=args.state,
        port_file=args.port_file,
        linger_seconds=args.linger,
        memory_limit_bytes=memory_limit,
        rpc_workers=args.rpc_workers,
    )
    return run_node_process(job=job, tee=tee, options=options)


def run_node_process(
    *, job: JobSpec, tee: TeeBackend, options: ServeOptions, out: Callable[[str], None] | None = None
) -> int:
    """Serve with plain-text progress on stdout and SIGTERM/SIGINT as a clean stop; returns the exit status."""
    say = out or (lambda line: print(line, flush=True))
    return_freed_memory_to_the_os()  # this process is the node: keep its memory at the budget (malloc_tuning.py)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = serve_job(
            job=job,
            tee=tee,
            options=options,
            stop=stop,
            on_started=lambda node: say(
                f"node listening on {node.address} (tee {tee.name}); job {job.name!r}, {job.rounds} rounds, "
                f"K={job.min_contributions}; {_start_state(node.node_status())}"
            ),
            on_round=lambda summary: say(format_round_summary(summary, job.rounds)),
            on_unfetched=lambda: say(_unfetched_warning(options)),
        )
    except EnclaveFLError as exc:
        in_use, config = isinstance(exc, PortInUse), isinstance(exc, ConfigError)
        return _refused(exc, ExitCode.IN_USE if in_use else ExitCode.CONFIG if config else ExitCode.FAILED)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stop.is_set() and status.job_state not in _ENDED:
        stopped = f"node stopped by a signal at round {status.round} ({status.job_state.value})"
        say(f"{stopped}; {_resume_hint(status, options)}")
        return ExitCode.INTERRUPTED
    say(format_end(status))
    return ExitCode.OK if status.job_state is JobState.FINISHED else ExitCode.FAILED


def _refused(exc: EnclaveFLError, status: ExitCode) -> ExitCode:
    """Say why on one line (the error's class and message) and return the exit status for it."""
    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

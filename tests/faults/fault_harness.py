"""Real processes for the fault suite: one node, two data owners, and the model owner (this test process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fault_task import OWNERS, credential_paths, fault_job, initial_model

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.receipt_checks import ReceiptTracker
from enclavefl.errors import CertificateMismatch, NotEnrolled, ProtocolError
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import NodeStatus
from enclavefl.transport.owner_tls import OwnerCredentials

HERE = Path(__file__).parent
NODE_GONE = (ProtocolError, CertificateMismatch, NotEnrolled)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FaultFederation:
    """Files, processes and a model-owner session for one scenario; `close()` SIGKILLs every child it started."""

    def __init__(
        self,
        root: Path,
        *,
        platform_dir: Path,
        policy: AttestationPolicy,
        owners: tuple[str, ...] = OWNERS,
        round_deadline_seconds: float = 20.0,
    ) -> None:
        self.root = root
        self.platform_dir = platform_dir
        self.policy = policy
        self.state = root / "node-state"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        credentials = root / "credentials"
        credentials.mkdir()
        pems = {}
        self.owner_names = owners
        for name in (*owners, "model-owner"):
            creds = OwnerCredentials.generate(name)
            creds.save(*credential_paths(credentials, name))
            pems[name] = creds.certificate_pem
        self.credentials_dir = credentials
        self.model_owner_credentials = OwnerCredentials.load(*credential_paths(credentials, "model-owner"))
        self.initial = initial_model()
        self.job: JobSpec = fault_job(
            self.initial, pems, pems["model-owner"], owners=owners, round_deadline_seconds=round_deadline_seconds
        )
        self.job_file = root / "job.toml"
        self.job_file.write_text(dump_job(self.job))
        self.model_file = root / "initial.safetensors"
        self.model_file.write_bytes(encode_weights(self.initial))
        self.node_port = free_port()
        self.owner_address = f"127.0.0.1:{self.node_port}"  # where owners connect (a proxy may sit in between)
        self.owner_addresses: dict[str, str] = {}  # per-owner overrides (a proxy per owner)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.node: subprocess.Popen[bytes] | None = None
        self.owners: dict[str, subprocess.Popen[bytes]] = {}
        self.launches = 0
        self._session: ModelOwnerSession | None = None
        self.model_owner_tracker = ReceiptTracker(job_digest=self.job.digest())

    @property
    def node_address(self) -> str:
        return f"127.0.0.1:{self.node_port}"

    # --- processes ------------------------------------------------------------------------------
    def _spawn(self, label: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.launches += 1
        log = open(self.logs / f"{self.launches:02d}-{label}.log", "wb")  # noqa: SIM115 -- closed with the process
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=HERE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        log.close()
        self.processes.append(proc)
        return proc

    def start_node(
        self, *, fault: str | None = None, state: Path | None = None, port: int | None = None
    ) -> subprocess.Popen[bytes]:
        """The node process (another `state` and `port`: a second copy of the enclave, as a forking host runs)."""
        crash = ["--crash-at", fault] if fault else []
        proc = self._spawn(
            "node",
            [
                str(HERE / "fault_node_runner.py"),
                "--job",
                str(self.job_file),
                "--state",
                str(state or self.state),
                "--listen",
                f"127.0.0.1:{port or self.node_port}",
                "--platform-dir",
                str(self.platform_dir),
                "--initial-model",
                str(self.model_file),
                "--report",
                str(self.root / "node-report.json"),
                *crash,
            ],
        )
        if port is None or port == self.node_port:
            self.node = proc
        return proc

    def start_owner(
        self,
        name: str,
        *,
        hold_round: int | None = None,
        hold_seconds: float = 0.0,
        gate: tuple[int, Path] | None = None,
    ) -> subprocess.Popen[bytes]:
        """An owner process; `gate=(round, file)`: it uploads that round only once `file` exists (see open_gate)."""
        hold = [] if hold_round is None else ["--hold-round", str(hold_round), "--hold-seconds", str(hold_seconds)]
        if gate is not None:
            hold += ["--gate-round", str(gate[0]), "--gate-file", str(gate[1])]
        proc = self._spawn(
            name,
            [
                str(HERE / "fault_owner_runner.py"),
                "--job",
                str(self.job_file),
                "--name",
                name,
                "--credentials",
                str(self.credentials_dir),
                "--platform-dir",
                str(self.platform_dir),
                "--address",
                self.owner_addresses.get(name, self.owner_address),
                "--state",
                str(self.owner_state(name)),
                "--report",
                str(self.root / f"{name}-report-{self.launches + 1}.json"),
                *hold,
            ],
        )
        self.owners[name] = proc
        return proc

    def owner_state(self, name: str) -> Path:
        return self.root / f"{name}-state"

    def start_all(self) -> None:
        self.start_node()
        for name in self.owner_names:
            self.start_owner(name)

    def sigkill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def sigkill_after(self, proc: subprocess.Popen[bytes], seconds: float) -> None:
        time.sleep(seconds)
        self.sigkill(proc)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)

    def log_tail(self, lines: int = 25) -> str:
        out = []
        for path in sorted(self.logs.iterdir()):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    # --- the model owner's view ---------------------------------------------------------------
    def session(self) -> ModelOwnerSession:
        if self._session is None:
            self._session = ModelOwnerSession.connect(
                self.node_address,
                job=self.job,
                policy=self.policy,
                credentials=self.model_owner_credentials,
                tracker=self.model_owner_tracker,
            )
        return self._session

    def status(self) -> NodeStatus | None:
        """The node's status, or None while it is unreachable (the session reconnects and re-attests)."""
        try:
            return self.session().status()
        except NODE_GONE:
            if self._session is not None:
                self._session.close()
            self._session = None
            return None

    def wait_for(self, what: str, predicate: Callable[[NodeStatus], bool], *, timeout: float = 60.0) -> NodeStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and predicate(status):
                return status
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}\n{self.log_tail()}")

    def wait_exit(self, proc: subprocess.Popen[bytes], *, timeout: float = 60.0) -> int:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not exit in {timeout} s\n{self.log_tail()}") from None


def federation_in(
    root: Path, platform_dir: Path, policy: AttestationPolicy, **options: object
) -> Iterator[FaultFederation]:
    fed = FaultFederation(root, platform_dir=platform_dir, policy=policy, **options)  # type: ignore[arg-type]
    try:
        yield fed
    finally:
        fed.close()

"""A federation as separate OS processes on loopback: the files each party needs, and the child processes.

    files = write_federation_files(workdir, job=job, initial=initial, datasets={"bob": {"x": ..., "y": ...}})
    run = run_federation(files, task="pkg.mod:TASK")   # node + owners as processes; this one is the model owner
    run.final.weights, run.summaries, run.exit_codes

or, piece by piece: `ProcessGroup`, `node_command`, `wait_for_address`, `data_owner_command`, `model_owner_session`.

Each party gets only its own files: a data owner its key, certificate, data, the job spec and its policy; the
node the job spec and the simulated platform. Children run with `python -m` and print one line per event;
`ProcessGroup` collects their output and kills whatever still runs when it closes. No torch here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import numpy as np
from safetensors.numpy import save_file

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec
from enclavefl.core.jobfile import load_job, read_initial_model
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.messages import RoundSummary
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import EnclaveFLError
from enclavefl.host.node_tee import write_simulation_policy
from enclavefl.owner.model_owner import FinalModel, ModelOwnerSession
from enclavefl.owner.model_owner_files import download_final_model
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.transport.owner_tls import OwnerCredentials

LineSink = Callable[[str, str], None]  # (child name, line)
NodeStarter = Callable[["ProcessGroup"], tuple["Child", str]]  # starts the node child; returns it and HOST:PORT
NODE_CLI: tuple[str, ...] = ("-m", "enclavefl.cli.main", "node", "serve")
OWNER_CLI: tuple[str, ...] = ("-m", "enclavefl.cli.main", "data-owner", "run")
OWNER_LIGHT: tuple[str, ...] = ("-m", "enclavefl.owner.data_owner_main")


class ChildProcessFailed(RuntimeError):
    """A party's process exited badly or did not answer in time (orchestration, not a trust decision)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerFiles:
    key: Path
    cert: Path
    data: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationFiles:
    directory: Path
    job: Path
    policy: Path
    platform_dir: Path
    initial_model: Path
    model_owner_key: Path
    model_owner_cert: Path
    owners: Mapping[str, OwnerFiles]


def write_federation_files(
    directory: Path,
    *,
    job: JobSpec,
    initial: ModelWeights,
    datasets: Mapping[str, Mapping[str, np.ndarray]],
    platform_dir: Path | None = None,
) -> FederationFiles:
    """Keys, certificates, data files, the job spec enrolling them, the initial model and the owners' policy."""
    directory.mkdir(parents=True, exist_ok=True)
    owners: dict[str, OwnerFiles] = {}
    specs = []
    for name, tensors in datasets.items():
        files = OwnerFiles(
            key=directory / f"{name}.key", cert=directory / f"{name}.pem", data=directory / f"{name}.safetensors"
        )
        creds = OwnerCredentials.generate(name)
        creds.save(files.key, files.cert)
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(files.data))
        owners[name] = files
        specs.append(DataOwnerSpec(name=name, certificate_pem=creds.certificate_pem.decode()))
    model_owner = OwnerCredentials.generate("model-owner")
    model_owner.save(directory / "model-owner.key", directory / "model-owner.pem")
    enrolled = replace(job, data_owners=tuple(specs), model_owner_certificate_pem=model_owner.certificate_pem.decode())
    (directory / "job.toml").write_text(dump_job(enrolled))
    (directory / "init.safetensors").write_bytes(encode_weights(initial))
    platform = platform_dir or directory / "platform"
    write_simulation_policy(platform, directory / "policy.toml")
    return FederationFiles(
        directory=directory,
        job=directory / "job.toml",
        policy=directory / "policy.toml",
        platform_dir=platform,
        initial_model=directory / "init.safetensors",
        model_owner_key=directory / "model-owner.key",
        model_owner_cert=directory / "model-owner.pem",
        owners=owners,
    )


def node_command(files: FederationFiles, *, port_file: Path, python: str = sys.executable) -> list[str]:
    """`enclavefl node serve` on the simulated platform, on a free loopback port written to `port_file`."""
    return [
        python,
        *NODE_CLI,
        "--job",
        str(files.job),
        "--tee",
        "insecure-simulation",
        "--platform-dir",
        str(files.platform_dir),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--linger",
        "60",
    ]


def data_owner_command(
    files: FederationFiles,
    name: str,
    address: str,
    *,
    task: str,
    light: bool = False,
    state: Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """`enclavefl data-owner run` (or its argparse twin when `light`, which starts faster); its durable state in
    `state`, else where the owner keeps it by default (this user's state directory for its key)."""
    owner = files.owners[name]
    return [
        python,
        *(OWNER_LIGHT if light else OWNER_CLI),
        "--node",
        address,
        "--job",
        str(files.job),
        "--policy",
        str(files.policy),
        "--task",
        task,
        "--data",
        str(owner.data),
        "--key",
        str(owner.key),
        "--cert",
        str(owner.cert),
        "--name",
        name,
        *(["--state", str(state)] if state is not None else []),
    ]


def model_owner_session(files: FederationFiles, address: str) -> ModelOwnerSession:
    """This process as the model owner: attest the node with the owners' policy, join with its own key."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulation policy is INSECURE by design; the demo says so itself
        policy = load_policy(files.policy)
    return ModelOwnerSession.connect(
        address,
        job=load_job(files.job),
        policy=policy,
        credentials=OwnerCredentials.load(files.model_owner_key, files.model_owner_cert),
    )


@dataclass(slots=True)
class Child:
    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    killed: bool = False
    reader: threading.Thread | None = None

    def wait(self, timeout: float) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ChildProcessFailed(f"{self.name} did not exit within {timeout:g} s{self.tail()}") from None
        if self.reader is not None:
            self.reader.join(5.0)
        return code

    def kill(self, signum: int = signal.SIGKILL) -> None:
        self.killed = True
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def tail(self, lines: int = 15) -> str:
        return "\n  ".join(["; its last output:", *self.lines[-lines:]]) if self.lines else "; it printed nothing"


class ProcessGroup:
    """Children with captured output (stdout and stderr, line by line); `close` stops every one still running."""

    def __init__(self, *, on_line: LineSink | None = None, env: Mapping[str, str] | None = None) -> None:
        self.children: dict[str, Child] = {}
        self._on_line = on_line
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, name: str, argv: Sequence[str], *, cwd: Path | None = None) -> Child:
        popen = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=self._env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C reaches the parent only; it stops the children
        )
        child = Child(name=name, popen=popen)
        child.reader = threading.Thread(target=self._read, args=(child,), name=f"read-{name}", daemon=True)
        child.reader.start()
        self.children[name] = child
        return child

    def failed(self) -> list[Child]:
        """Children that exited non-zero without being killed on purpose."""
        return [c for c in self.children.values() if not c.killed and c.popen.poll() not in (None, 0)]

    def close(self, timeout: float = 5.0) -> None:
        running = [c for c in self.children.values() if c.popen.poll() is None]
        for child in running:
            child.popen.terminate()
        deadline = time.monotonic() + timeout
        for child in running:
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()

    def _read(self, child: Child) -> None:
        assert child.popen.stdout is not None
        for raw in child.popen.stdout:
            line = raw.rstrip("\n")
            child.lines.append(line)
            if self._on_line is not None:
                self._on_line(child.name, line)


def wait_for_address(port_file: Path, node: Child, *, timeout: float = 60.0) -> str:
    """The HOST:PORT the node wrote once listening; ChildProcessFailed if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            return port_file.read_text().strip()
        if node.popen.poll() is not None:
            raise ChildProcessFailed(f"the node exited with status {node.popen.returncode}{node.tail()}")
        time.sleep(0.05)
    raise ChildProcessFailed(f"the node did not listen within {timeout:g} s{node.tail()}")


ATTESTED_LINE: Final = "node attested"  # owner/notices.py describe_enclave: printed after the owner's warm-up


def wait_until_owners_attested(
    group: ProcessGroup, owners: Iterable[str], *, node_name: str | None, limit: float = 60.0
) -> None:
    """Before the model is submitted (round 1 opens then, with its deadline), every owner process has attested the
    node, or exited; so round 1 does not race the owners' start-up and warm-up. A node that exits, or `limit`
    seconds, ends the wait: the run then goes on as before and its own checks say what failed."""
    children = [group.children[name] for name in owners]
    node = group.children.get(node_name) if node_name is not None else None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and (node is None or node.popen.poll() is None):
        if all(c.popen.poll() is not None or any(ATTESTED_LINE in line for line in c.lines) for c in children):
            return
        time.sleep(0.05)


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationRun:
    final: FinalModel
    summaries: tuple[RoundSummary, ...]
    exit_codes: dict[str, int]  # a child killed on purpose shows its signal, e.g. -9
    address: str
    output: dict[str, list[str]]  # every child's lines


def run_federation(
    files: FederationFiles,
    *,
    task: str,
    owner_tasks: Mapping[str, str] | None = None,
    light_owners: bool = False,
    on_round: Callable[[RoundSummary, ProcessGroup], None] | None = None,
    on_line: LineSink | None = None,
    timeout: float = 180.0,
    start_node: NodeStarter | None = None,
    owner_state: Path | None = None,
) -> FederationRun:
    """Start the node and every data owner as processes; this process is the model owner until the job ends.

    Every owner runs `task` ("file.py:NAME"), or its own from `owner_tasks` (by owner name). `start_node` starts
    the node another way (under gramine-direct: demos/gramine_direct.py) and returns it with its HOST:PORT.
    `owner_state`: each owner keeps its state in `owner_state/NAME` (a demo's throwaway keys), not its default.

    Raises ChildProcessFailed when a party exits badly (unless killed on purpose in `on_round`) or time runs out.
    """
    workdir = files.directory
    summaries: list[RoundSummary] = []
    with ProcessGroup(on_line=on_line) as group:
        if start_node is None:
            node = group.start("node", node_command(files, port_file=workdir / "node.addr"))
            address = wait_for_address(workdir / "node.addr", node)
        else:
            node, address = start_node(group)
        for name in files.owners:
            own_task = (owner_tasks or {}).get(name, task)
            state = owner_state / name if owner_state is not None else None
            group.start(name, data_owner_command(files, name, address, task=own_task, light=light_owners, state=state))
        session = model_owner_session(files, address)
        try:
            with Watchdog(group, timeout=timeout, abort=session.close) as watchdog:
                try:
                    wait_until_owners_attested(group, files.owners, node_name="node" if start_node is None else None)
                    session.submit_initial_model(read_initial_model(files.initial_model))
                    for summary in session.watch():
                        summaries.append(summary)
                        if on_round is not None:
                            on_round(summary, group)
                    final = download_final_model(
                        session, out=workdir / "final.safetensors", receipts_out=workdir / "receipts.json"
                    )
                except (EnclaveFLError, ValueError) as exc:  # ValueError: grpc's call on the channel abort closed
                    if watchdog.reason:
                        raise ChildProcessFailed(watchdog.reason) from exc
                    raise
        finally:
            session.close()
        codes = {name: child.wait(60.0) for name, child in group.children.items()}
        bad = [c for c in group.children.values() if not c.killed and c.popen.returncode != 0]
        if bad:
            raise ChildProcessFailed(f"{bad[0].name} exited with status {bad[0].popen.returncode}{bad[0].tail()}")
    return FederationRun(
        final=final,
        summaries=tuple(summaries),
        exit_codes=codes,
        address=address,
        output={c.name: c.lines for c in group.children.values()},
    )


class Watchdog:
    """Calls `abort` once a child fails unexpectedly or `timeout` passes (unblocks a model owner's watch)."""

    def __init__(self, group: ProcessGroup, *, timeout: float, abort: Callable[[], None]) -> None:
        self.reason = ""
        self._group, self._abort = group, abort
        self._deadline = time.monotonic() + timeout
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="federation-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        while not self._done.wait(0.2):
            failed = self._group.failed()
            if failed:
                child = failed[0]
                self.reason = f"{child.name} exited with status {child.popen.returncode}{child.tail()}"
            elif time.monotonic() > self._deadline:
                self.reason = "the federation did not finish in time"
            if self.reason:
                self._abort()
                return

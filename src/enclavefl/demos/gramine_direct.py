"""A federation whose node runs under Gramine's LibOS (`gramine-direct`) from a release's own manifest.

    manifest = prepare_direct_manifest(release_dir, platform_dir=files.platform_dir, port=port)
    run, usage = run_direct_federation(files, release_dir=release_dir, task="tiny_task.py:TASK")
    usage.max_threads, usage.peak_rss_bytes, usage.peak_virtual_bytes

The release is built for the federation's job (`enclavefl enclave init`, packaging/enclave/build-release.sh). Its
manifest template gets the three INSECURE changes of tee/insecure/direct_manifest.py (a test key for the encrypted
state, the simulated TEE on the command line, flock), gramine-manifest renders it in the release directory, and
`gramine-direct aggregator-direct` runs the node there: the release's interpreter, stdlib, native libraries, venv
and Gramine runtime, its mounts and encrypted state, gRPC on Gramine's sockets. The data owners and the model
owner run outside, on loopback. The node process is sampled for threads and memory (/proc/PID/status).
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from enclavefl.core.messages import RoundSummary
from enclavefl.demos.process_federation import (
    Child,
    ChildProcessFailed,
    FederationFiles,
    FederationRun,
    NodeStarter,
    ProcessGroup,
    node_command,
    run_federation,
    wait_for_address,
)
from enclavefl.tee.gramine_pkg.manifest import ENCLAVE_PYTHON, JOB_TOML_IN_ENCLAVE, STATE_MOUNT, TEMPLATE_NAME
from enclavefl.tee.insecure.direct_manifest import PLATFORM_MOUNT, insecure_direct_template

DIRECT_NAME: Final = "aggregator-direct"
_LISTENING: Final = re.compile(r"node listening on (\S+)")


@dataclass(slots=True)
class ProcessUsage:
    """Threads and memory of one process, sampled while it ran; peaks from the kernel's own counters."""

    pid: int = 0
    max_threads: int = 0
    peak_rss_bytes: int = 0  # VmHWM
    peak_virtual_bytes: int = 0  # VmPeak: the address space an enclave without EDMM must hold
    samples: int = 0
    startup_seconds: float = 0.0  # from starting the node to its listening address (Python's start-up, the job)
    round_times: list[float] = field(default_factory=list)  # seconds between round summaries (first: from start)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_direct_manifest(release: Path, *, platform_dir: Path, port: int, key_hex: str | None = None) -> Path:
    """Write and render RELEASE/aggregator-direct.manifest (INSECURE: see tee/insecure/direct_manifest.py)."""
    argv = [
        ENCLAVE_PYTHON,
        "-I",
        "-B",
        "-m",
        "enclavefl.cli.main",
        "node",
        "serve",
        "--tee",
        "insecure-simulation",
        "--platform-dir",
        PLATFORM_MOUNT,
        "--job",
        JOB_TOML_IN_ENCLAVE,  # `node serve` reads the TOML, as an operator's command does
        "--state",
        STATE_MOUNT,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--linger",
        "60",
    ]
    text = insecure_direct_template(
        (release / TEMPLATE_NAME).read_text(encoding="utf-8"),
        argv=argv,
        platform_dir=platform_dir,
        key_hex=key_hex or secrets.token_hex(16),
    )
    template = release / f"{DIRECT_NAME}.manifest.template"
    template.write_text(text, encoding="utf-8")
    manifest = release / f"{DIRECT_NAME}.manifest"
    subprocess.run(["gramine-manifest", template.name, manifest.name], cwd=release, check=True)  # noqa: S603,S607
    for directory in ("state", "collateral"):  # what run.sh creates: the mounts need them
        (release / directory).mkdir(exist_ok=True)
    return manifest


class _Sampler:
    """Reads /proc/PID/status of the node every `interval` seconds until stopped."""

    def __init__(self, usage: ProcessUsage, interval: float = 0.05) -> None:
        self.usage, self.interval = usage, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)

    def start(self, pid: int) -> None:
        self.usage.pid = pid
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            fields = read_status(self.usage.pid)
            if not fields:
                return
            self.usage.samples += 1
            self.usage.max_threads = max(self.usage.max_threads, fields.get("Threads", 0))
            self.usage.peak_rss_bytes = max(self.usage.peak_rss_bytes, fields.get("VmHWM", 0))
            self.usage.peak_virtual_bytes = max(self.usage.peak_virtual_bytes, fields.get("VmPeak", 0))


def read_status(pid: int) -> dict[str, int]:
    """Threads and the Vm* counters (in bytes) of /proc/PID/status; empty once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if key == "Threads":
            found[key] = int(parts[0])
        elif key.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            found[key] = int(parts[0]) * 1024
    return found


def _starter(command: list[str], *, cwd: Path | None, sampler: _Sampler, port_file: Path | None) -> NodeStarter:
    def start(group: ProcessGroup) -> tuple[Child, str]:
        started = time.monotonic()
        node = group.start("node", command, cwd=cwd)
        sampler.start(node.popen.pid)
        if port_file is not None:
            address = wait_for_address(port_file, node, timeout=120.0)
            sampler.usage.startup_seconds = time.monotonic() - started
            return node, address
        deadline = started + 120.0
        while time.monotonic() < deadline:  # the node prints "node listening on HOST:PORT" once it serves
            found = next((m.group(1) for line in list(node.lines) if (m := _LISTENING.search(line))), None)
            if found:
                sampler.usage.startup_seconds = time.monotonic() - started
                return node, found
            if node.popen.poll() is not None:
                raise ChildProcessFailed(f"the node exited with status {node.popen.returncode}{node.tail()}")
            time.sleep(0.1)
        raise ChildProcessFailed(f"the node did not listen within 120 s{node.tail()}")

    return start


def run_direct_federation(
    files: FederationFiles, *, release_dir: Path, task: str, timeout: float = 600.0
) -> tuple[FederationRun, ProcessUsage]:
    """The federation with its node under gramine-direct, from the release's manifest; owners outside."""
    gramine_direct = shutil.which("gramine-direct")
    if gramine_direct is None:
        raise ChildProcessFailed("gramine-direct is not on PATH: install Gramine (docs/gramine.md)")
    port = free_port()
    prepare_direct_manifest(release_dir, platform_dir=files.platform_dir, port=port)
    usage = ProcessUsage()
    sampler = _Sampler(usage)
    start = _starter([gramine_direct, DIRECT_NAME], cwd=release_dir, sampler=sampler, port_file=None)
    return _timed(files, task=task, start=start, usage=usage, sampler=sampler, timeout=timeout), usage


def run_native_federation(
    files: FederationFiles, *, task: str, timeout: float = 600.0
) -> tuple[FederationRun, ProcessUsage]:
    """The same federation with `enclavefl node serve` as an ordinary process: the baseline."""
    usage = ProcessUsage()
    sampler = _Sampler(usage)
    port_file = files.directory / "node.addr"
    port_file.unlink(missing_ok=True)
    start = _starter(node_command(files, port_file=port_file), cwd=None, sampler=sampler, port_file=port_file)
    return _timed(files, task=task, start=start, usage=usage, sampler=sampler, timeout=timeout), usage


def _timed(
    files: FederationFiles, *, task: str, start: NodeStarter, usage: ProcessUsage, sampler: _Sampler, timeout: float
) -> FederationRun:
    last = [time.monotonic()]

    def on_round(summary: RoundSummary, group: ProcessGroup) -> None:
        now = time.monotonic()
        usage.round_times.append(now - last[0])
        last[0] = now

    try:
        run = run_federation(
            files,
            task=task,
            start_node=start,
            on_round=on_round,
            timeout=timeout,
            owner_state=files.directory / "owners",
        )
    finally:
        sampler.stop()
    return run

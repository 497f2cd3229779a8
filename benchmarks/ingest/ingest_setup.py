"""What bench_ingest's receivers and senders share: the model, the job and its credentials, CPU clocks, processes.

job, policy, tee = prepare(work, params=10_000_000, owners=2)   # job.toml, policy.toml, owner keys in `work`
sender = spawn_sender(work, kind="ssl", name="-", address=address, params=params)
report = report_of(sender)                                      # its JSON line: seconds, cpu_seconds, bytes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

MiB = 1 << 20
STARTED = "started"  # a sender's line just before its first byte
BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "bench_ingest.py"  # the senders are its "sender" mode


def model(params: int, value: float = 0.0) -> ModelWeights:
    pieces = 10
    return ModelWeights({f"layer{i}": np.full(params // pieces, value, np.float32) for i in range(pieces)})


def prepare(work: Path, *, params: int, owners: int) -> tuple[JobSpec, AttestationPolicy, InsecureSimulationBackend]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        platform = SimulatedPlatform.load_or_create(work / "platform")
        tee = InsecureSimulationBackend(platform)
        policy = (
            AttestationPolicy.strict().allow_mrenclave(measure_aggregator_code()).allow_simulation(platform.root_ca_der)
        )
    (work / "root.der").write_bytes(platform.root_ca_der)
    (work / "policy.toml").write_text(policy.to_toml(simulation_root_ca=str(work / "root.der")))
    names = [f"owner{i}" for i in range(owners)]
    for name in names:
        OwnerCredentials.generate(name).save(work / f"{name}.key", work / f"{name}.pem")
    initial = model(params)
    job = JobSpec(
        name="bench",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=owners,
        round_deadline_seconds=3600.0,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        data_owners=tuple(DataOwnerSpec(name=n, certificate_pem=(work / f"{n}.pem").read_text()) for n in names),
    )
    (work / "job.toml").write_text(dump_job(job))
    return job, policy, tee


def spawn_sender(
    work: Path, *, kind: str, name: str, address: str, params: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(BENCH_SCRIPT), "sender", "--dir", str(work), "--kind", kind, "--name", name]
    cmd += ["--address", address, "--params", str(params), "--chunk-bytes", str(chunk_bytes)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def wait_started(sender: subprocess.Popen[str]) -> None:
    """Until the sender printed STARTED (just before its first byte) or exited."""
    assert sender.stdout is not None
    while sender.stdout.readline().strip() not in (STARTED, ""):
        pass


def report_of(proc: subprocess.Popen[str]) -> dict[str, float]:
    """The sender's last line (its JSON report), once it exited; an empty dict if it printed it already."""
    out, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"sender failed ({proc.returncode})")
    lines = out.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user + system (nanosecond clock: os.times() ticks 10 ms)."""
    return time.process_time()


def thread_cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of this process: thread id -> (kind, seconds).

    The kind is the Python thread's name without its pool index (enclavefl-ingest_0 -> enclavefl-ingest), or the
    kernel's name of a native thread (gRPC's C-core threads are "event_engine")."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    threads: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            seconds = _task_cpu_seconds(task)
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        kind = names.get(int(task.name), comm).rstrip("0123456789").rstrip("_")
        threads[int(task.name)] = (kind, seconds)
    return threads


def _task_cpu_seconds(task: Path) -> float:
    """One thread's CPU seconds: from schedstat (nanoseconds on the CPU), else from stat (user + system, in ticks
    of 10 ms: too coarse for a thread that runs a few tens of milliseconds)."""
    try:
        return int((task / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_thread_kind(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each kind of thread spent between two `thread_cpu_seconds` readings (threads that ended between
    them, like the upload's digest helper, are not in either: the caller counts them as the remainder)."""
    spent: dict[str, float] = {}
    for tid, (kind, seconds) in after.items():
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(tid, (kind, 0.0))[1]
    return spent


def thread_figures(prefix: str, threads: dict[str, float], total: float) -> dict[str, float]:
    """`prefix:kind` -> CPU s, plus the threads that ended inside the window (the digest helper) as the remainder."""
    figures = {f"{prefix}:{kind}": seconds for kind, seconds in threads.items()}
    figures[f"{prefix}:(ended in the window: the digest helper)"] = max(0.0, total - sum(threads.values()))
    return figures

"""Issue 25 item 1: a node's calls that wait hold no thread, so its thread count does not grow with its owners.

Owners in another process (tests/transport/hold_polls.py: real gRPC over TLS, one connection and one joined
session each) keep one Status long poll each held by the node; the node runs in this process, so its threads are
this process's. On the thread-pool server of issue 25's "before" every held poll took a pool thread (up to 32),
so 200 held polls had more threads than 10.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from transport_harness import model

from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.enclave.node import AggregatorNode
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.gramine_pkg.threads import GRPC_CORE_POOL_MAX
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]
HOLDER = Path(__file__).with_name("hold_polls.py")
OWNERS = 200


def threads_now() -> tuple[list[str], list[str], int]:
    """(the Python threads' names, every other thread of this process by its native name, gRPC core's event-engine
    threads): the event engine's pool is gRPC's own and grows with the machine's load (never with held calls)
    within clamp(cores, 4, 16), the bound sgx.max_threads budgets for."""
    native = []
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended while listed
            native.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip())
    engine = native.count("event_engine")
    # not the node's: dcap-qvl's async runtime, started by quote verification in this test process (by another test
    # of the same worker) and shrinking when idle; the enclave never loads dcap_qvl (tests/enclave/test_tcb.py)
    others = sorted(n for n in native if n not in ("event_engine", "tokio-rt-worker"))
    return sorted(t.name for t in threading.enumerate()), others, engine


def held_by(node: AggregatorNode, names: list[str], tmp_path: Path) -> tuple[list[str], list[str], int]:
    """This process's threads while `names` each hold a long poll on `node` (measured once all are held)."""
    assert node.server is not None
    cert = tmp_path / "node.pem"
    cert.write_bytes(node.certificate_pem)
    args = [sys.executable, str(HOLDER), node.address, str(cert), node.job.digest().hex(), str(tmp_path), *names]
    holder = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == f"joined {len(names)}"
        deadline = time.monotonic() + 60.0
        while node.server.gate.held_now < len(names):
            assert time.monotonic() < deadline, f"only {node.server.gate.held_now} of {len(names)} polls are held"
            time.sleep(0.05)
        time.sleep(1.0)  # past the ramp of connections and joins
        counted = threads_now()
        assert node.server.gate.held_now >= len(names)  # still held while counted
        return counted
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)


def test_the_nodes_threads_do_not_change_between_10_and_200_owners_holding_long_polls(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], tmp_path: Path
) -> None:
    tee, _ = sim_enclave
    names = [f"owner-{i:03d}" for i in range(OWNERS)]
    owners = {}
    for name in names:
        owners[name] = OwnerCredentials.generate(name)
        owners[name].save(tmp_path / f"{name}.key", tmp_path / f"{name}.pem")
    initial = model()
    job = JobSpec(
        name="many-owners",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=2,
        data_owners=tuple(DataOwnerSpec(name=n, certificate_pem=c.certificate_pem.decode()) for n, c in owners.items()),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    node = AggregatorNode(job=job, tee=tee)  # no initial model: its status stays put, every poll is held 5 s
    node.serve_grpc().start()
    try:
        few = held_by(node, names[:10], tmp_path)
        many = held_by(node, names, tmp_path)
    finally:
        node.stop(0)

    assert many[:2] == few[:2], f"threads (Python, other) with 10 owners holding polls: {few}; with {OWNERS}: {many}"
    assert max(few[2], many[2]) <= GRPC_CORE_POOL_MAX, f"gRPC's event engine outgrew its bound: {few[2]}, {many[2]}"

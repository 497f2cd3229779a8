"""Upload ingest through the node over TLS on loopback vs a plain Python `ssl` socket, and node memory.

1. Throughput: one data owner (another process) streams a float32 update (by default 40 MB, then 400 MB) to the
   node (attested, pinned gRPC/TLS, header checks, NaN checks, staging, the commitment's SHA-256 checked, fold);
   baseline: the same bytes through a plain `ssl` socket into a preallocated buffer (recv_into), sender in
   another process as well. A third path, gRPC alone (the node's channel options and framing, a servicer that
   only copies each message into a buffer: no checks, no hash, no fold), shows what the transport itself carries.
   The paths run --runs times each, interleaved in alternating order (node, ssl, gRPC alone, then gRPC alone,
   ssl, node, ...), so a change in machine load hits them alike: one run of the `ssl` baseline moves by several
   times from run to run on a shared VM. Quoted: the ratio of the medians with a bootstrap 95% interval, and
   the quartiles of the per-repetition ratios; for wall time and, less sensitive to load, for the receiving
   process's CPU seconds (user + system, all threads) over the same bytes.
2. Memory: node peak RSS while 10 owner processes upload a 10M-parameter model at once (ratio to model size).

    .venv/bin/python benchmarks/bench_ingest.py [--runs 9] [--skip-memory] [--params 10000000,100000000]
        [--mem-params 10000000] [--owners 10] [--chunk-bytes 1048576] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.tls import private_key_pem, self_signed_certificate
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

MiB = 1 << 20
STARTED = "started"  # a sender's line just before its first byte
GRPC_ALONE_METHOD = "/bench.Drain/Upload"


def model(params: int, value: float = 0.0) -> ModelWeights:
    pieces = 10
    return ModelWeights({f"layer{i}": np.full(params // pieces, value, np.float32) for i in range(pieces)})


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


# --- setup shared by the node and its sender processes -----------------------------------------------
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


def run_sender(args: argparse.Namespace) -> None:
    """Child process: attest, join, wait for round 1, stream the update; print the seconds it took."""
    from enclavefl.owner.attested import connect_data_owner

    work = Path(args.dir)
    payload = encode_weights(model(args.params, 1.0))
    if args.kind == "ssl":
        context = ssl.create_default_context(cafile=str(work / "ssl.pem"))
        context.check_hostname = False
        host, port = args.address.rsplit(":", 1)
        start, cpu = time.perf_counter(), cpu_seconds()
        with socket.create_connection((host, int(port))) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(payload)
            tls.recv(1)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "bytes": len(payload)}))
        return
    if args.kind == "grpc-alone":
        send_grpc_alone(args.address, (work / "grpc.pem").read_bytes(), payload, args.chunk_bytes)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job, policy = load_job(work / "job.toml"), load_policy(work / "policy.toml")
    credentials = OwnerCredentials.load(work / f"{args.name}.key", work / f"{args.name}.pem")
    node = connect_data_owner(
        args.address, name=args.name, job=job, policy=policy, credentials=credentials, chunk_bytes=args.chunk_bytes
    )
    while node.client.node_status().phase.value != "open":
        time.sleep(0.01)
    start = time.perf_counter()
    # the owner's own commitment to its payload (a SHA-256 of it, salted), computed before any byte is sent
    message = UpdateMessage.of(owner=args.name, round=1, num_examples=1, payload=payload)
    print(STARTED, flush=True)  # the node's side starts counting its CPU time here
    hashed, cpu = time.perf_counter(), cpu_seconds()
    node.client.upload_update(message)
    done, cpu = time.perf_counter(), cpu_seconds() - cpu
    report = {"seconds": done - hashed, "owner_hash_seconds": hashed - start, "cpu_seconds": cpu, "bytes": len(payload)}
    print(json.dumps(report))


def spawn_sender(
    work: Path, *, kind: str, name: str, address: str, params: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        __file__,
        "sender",
        "--dir",
        str(work),
        "--kind",
        kind,
        "--name",
        name,
        "--address",
        address,
        "--params",
        str(params),
        "--chunk-bytes",
        str(chunk_bytes),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user + system (nanosecond clock: os.times() ticks 10 ms)."""
    return time.process_time()


def thread_cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of this process: thread id -> (kind, seconds).

    The kind is the Python thread's name without its pool index (enclavefl-ingest_0 -> enclavefl-ingest), or the
    kernel's name of a native thread (gRPC's C-core threads are "event_engine")."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    threads: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        kind = names.get(int(task.name), comm).rstrip("0123456789").rstrip("_")
        threads[int(task.name)] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return threads


def cpu_by_thread_kind(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each kind of thread spent between two `thread_cpu_seconds` readings (threads that ended between
    them, like the upload's digest helper, are not in either: the caller counts them as the remainder)."""
    spent: dict[str, float] = {}
    for tid, (kind, seconds) in after.items():
        spent[kind] = spent.get(kind, 0.0) + seconds - before.get(tid, (kind, 0.0))[1]
    return spent


def seconds_of(proc: subprocess.Popen[str], key: str = "seconds") -> float:
    return float(report_of(proc)[key])


def report_of(proc: subprocess.Popen[str]) -> dict[str, float]:
    """The sender's last line (its JSON report), once it exited; an empty dict if it printed it already."""
    out, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"sender failed ({proc.returncode})")
    lines = out.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


# --- measurements --------------------------------------------------------------------------------------
def node_throughput(work: Path, params: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> dict[str, float]:
    """Seconds of the upload, seconds the owner spent hashing its payload for the commitment before it, and the
    CPU seconds each side spent during the upload (the node's: from the sender's first byte to its report).

    The job waits for two owners and only one uploads, so the round does not close and seal (a second pass over
    the model, and the sealed checkpoint written) inside the measured window: ingest is receive, checks, the
    commitment's hash, and the fold into the accumulator, all done before the node acknowledges."""
    job, _, tee = prepare(work, params=params, owners=2)
    node = AggregatorNode(job=job, tee=tee, initial_model=model(params)).serve_grpc(chunk_bytes=chunk_bytes).start()
    try:
        sender = spawn_sender(
            work, kind="grpc", name="owner0", address=node.address, params=params, chunk_bytes=chunk_bytes
        )
        assert sender.stdout is not None
        while sender.stdout.readline().strip() not in (STARTED, ""):
            pass
        node_cpu, at_start = cpu_seconds(), thread_cpu_seconds()
        line = sender.stdout.readline()  # the report, printed once the node's acknowledgement arrived
        node_cpu, threads = cpu_seconds() - node_cpu, cpu_by_thread_kind(at_start, thread_cpu_seconds())
        report_of(sender)  # the exit status
        report = dict(json.loads(line))
        if node.node_status().contributions != 1:
            raise RuntimeError(f"the node did not count the upload: {node.node_status()}")
    finally:
        node.stop(0)
    by_thread = {f"thread:{kind}": seconds for kind, seconds in threads.items()}
    by_thread["thread:(ended in the window: the digest helper)"] = max(0.0, node_cpu - sum(threads.values()))
    return {**report, **by_thread, "receiver_cpu_seconds": node_cpu}


def send_grpc_alone(address: str, certificate_pem: bytes, payload: bytes, chunk_bytes: int) -> None:
    """The sender of the gRPC-alone path: the client's channel options and upload framing, nothing else."""
    import grpc

    from enclavefl.transport import owner_wire, wire
    from enclavefl.transport.tls import NODE_TLS_NAME

    options = [("grpc.ssl_target_name_override", NODE_TLS_NAME), *wire.channel_options(chunk_bytes)]
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate_pem)
    with grpc.secure_channel(address, credentials, options=options) as channel:
        upload = channel.stream_unary(
            GRPC_ALONE_METHOD, request_serializer=owner_wire.serialize_upload_part, response_deserializer=bytes
        )
        upload(iter([memoryview(b"connect")]))  # the TLS handshake, outside the timing (as attestation is)
        start, cpu = time.perf_counter(), cpu_seconds()
        upload(wire.chunk_views(payload, chunk_bytes))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "bytes": len(payload)}))


def grpc_alone_throughput(work: Path, params: int, chunk_bytes: int) -> dict[str, float]:
    """gRPC/TLS with the node's options and framing into a buffer, and nothing else: the transport's own speed."""
    from concurrent import futures

    import grpc
    from cryptography.hazmat.primitives.asymmetric import ec

    from enclavefl.transport import wire

    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed_certificate(key, common_name="bench")
    (work / "grpc.pem").write_bytes(certificate)
    buffer = memoryview(bytearray(len(encode_weights(model(params)))))  # preallocated, like the staging slot
    cpu: list[float] = []

    def drain(frames: Iterator[wire.UploadFrame], context: grpc.ServicerContext) -> bytes:
        start, received = cpu_seconds(), 0
        for frame in frames:
            end = min(received + len(frame.data), len(buffer))
            buffer[received:end] = frame.data[: end - received]
            received = end
        cpu.append(cpu_seconds() - start)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=wire.channel_options(chunk_bytes))
    handler = grpc.stream_unary_rpc_method_handler(
        drain, request_deserializer=wire.parse_upload_part, response_serializer=bytes
    )
    service, method = GRPC_ALONE_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(private_key_pem(key), certificate)]))
    server.start()
    try:
        sender = spawn_sender(
            work, kind="grpc-alone", name="-", address=f"127.0.0.1:{port}", params=params, chunk_bytes=chunk_bytes
        )
        report = report_of(sender)
    finally:
        server.stop(0)
    return {**report, "receiver_cpu_seconds": cpu[-1]}


def ssl_throughput(work: Path, params: int) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (work / "ssl.pem").write_bytes(self_signed_certificate(key, common_name="bench"))
    (work / "ssl.key").write_bytes(private_key_pem(key))  # a benchmark's throwaway key, not a node key
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(work / "ssl.pem", work / "ssl.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(120)  # a sender that dies before connecting must not hang the benchmark
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    sender = spawn_sender(work, kind="ssl", name="-", address=address, params=params)
    payload_size = len(encode_weights(model(params)))
    buffer = bytearray(payload_size)  # preallocated, like the node's staging slot
    view = memoryview(buffer)
    raw, _ = listener.accept()
    receiver_cpu = cpu_seconds()
    with context.wrap_socket(raw, server_side=True) as tls:
        received = 0
        while received < payload_size:
            n = tls.recv_into(view[received:], min(MiB, payload_size - received))
            if n == 0:
                break
            received += n
        tls.sendall(b"k")
    receiver_cpu = cpu_seconds() - receiver_cpu
    listener.close()
    return {**report_of(sender), "receiver_cpu_seconds": receiver_cpu}


def wait_sealed(node: AggregatorNode, *, timeout: float) -> None:
    """Until the round is sealed (fold, finalize and checkpoint done); the senders do not sign, so no release."""
    deadline = time.monotonic() + timeout
    while node.node_status().phase.value != "signing":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the round was not sealed within {timeout:g} s: {node.node_status()}")
        time.sleep(0.02)


def node_memory(work: Path, params: int, owners: int) -> tuple[int, int, int]:
    job, _, tee = prepare(work, params=params, owners=owners)
    initial = model(params)
    baseline = rss_bytes()
    reset_peak_rss()
    node = AggregatorNode(job=job, tee=tee, initial_model=initial).serve_grpc().start()
    del initial
    try:
        senders = [
            spawn_sender(work, kind="grpc", name=f"owner{i}", address=node.address, params=params)
            for i in range(owners)
        ]
        for s in senders:
            seconds_of(s)
        wait_sealed(node, timeout=1200)
    finally:
        node.stop(0)
    return peak_rss_bytes() - baseline, params * 4, baseline


def sha256_seconds(params: int) -> float:
    """The payload hash the node must compute for the receipt's commitment, alone: no network, no copies."""
    import hashlib

    payload = encode_weights(model(params, 1.0))
    start = time.perf_counter()
    hashlib.sha256(payload).digest()
    return time.perf_counter() - start


def throughput_runs(work: Path, params: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds (and CPU seconds) per repetition of each path, interleaved so that load changes hit them alike.

    Each repetition runs the paths back to back, in alternating order (node, ssl, gRPC alone, then gRPC alone,
    ssl, node, ...), so neither path always runs first after a pause or last before one."""
    runs: dict[str, list[float]] = {}
    mb = params * 4 / 1e6
    for i in range(args.runs):
        run_dir = work / f"run{i}"  # fresh credentials and job per run: each run is a whole new node
        run_dir.mkdir()
        paths = ["node", "ssl", "grpc"] if i % 2 == 0 else ["grpc", "ssl", "node"]
        measured: dict[str, dict[str, float]] = {}
        for path in paths:
            if path == "node":
                measured[path] = node_throughput(run_dir, params, args.chunk_bytes)
            elif path == "ssl":
                measured[path] = ssl_throughput(run_dir, params)
            else:
                measured[path] = grpc_alone_throughput(run_dir, params, args.chunk_bytes)
        node, plain, alone = measured["node"], measured["ssl"], measured["grpc"]
        figures = {
            "node": node["seconds"],
            "owner_hash": node["owner_hash_seconds"],
            "ssl": plain["seconds"],
            "sha256": sha256_seconds(params),
            "node_cpu": node["receiver_cpu_seconds"],
            "node_sender_cpu": node["cpu_seconds"],
            "ssl_cpu": plain["receiver_cpu_seconds"],
            "ssl_sender_cpu": plain["cpu_seconds"],
            "grpc": alone["seconds"],
            "grpc_cpu": alone["receiver_cpu_seconds"],
            "grpc_sender_cpu": alone["cpu_seconds"],
        }
        figures.update({key: value for key, value in node.items() if key.startswith("thread:")})
        for key, value in figures.items():
            runs.setdefault(key, []).append(value)
        print(
            f"{mb:.3g} MB run {i + 1}/{args.runs}: node {mb / node['seconds']:.0f} MB/s, "
            f"ssl {mb / plain['seconds']:.0f} MB/s, gRPC alone {mb / alone['seconds']:.0f} MB/s, "
            f"node / ssl {plain['seconds'] / node['seconds']:.2f} (wall), "
            f"{plain['receiver_cpu_seconds'] / node['receiver_cpu_seconds']:.2f} (receiver CPU)",
            flush=True,
        )
    return runs


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile)."""
    low, median, high = np.percentile(values, [25, 50, 75])
    return float(low), float(median), float(high)


def bootstrap_ratio(numerator: list[float], denominator: list[float], *, draws: int = 4000) -> tuple[float, float]:
    """95% interval of median(numerator) / median(denominator), repetitions resampled in pairs (same run)."""
    rng = np.random.default_rng(25)  # resampling for an interval, not a secret
    n = len(numerator)
    picks = rng.integers(0, n, size=(draws, n))
    top, bottom = np.asarray(numerator)[picks], np.asarray(denominator)[picks]
    ratios = np.median(top, axis=1) / np.median(bottom, axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def ratio_line(label: str, numerator: list[float], denominator: list[float]) -> str:
    """Ratio of the medians, its bootstrap 95% interval, and the quartiles of the per-repetition ratios."""
    pairs = [a / b for a, b in zip(numerator, denominator, strict=True)]
    low, median, high = quartiles(pairs)
    ci_low, ci_high = bootstrap_ratio(numerator, denominator)
    whole = statistics.median(numerator) / statistics.median(denominator)
    return f"{label:<44}{whole:>8.2f}   [{ci_low:.2f}, {ci_high:.2f}]   {median:>6.2f} [{low:.2f}, {high:.2f}]"


def print_throughput(runs: dict[str, list[float]], params: int, args: argparse.Namespace) -> None:
    mb = params * 4 / 1e6
    rate = {key: [mb / s for s in runs[key]] for key in ("node", "ssl", "grpc", "sha256")}
    print(
        f"\ningest of a {params / 1e6:g}M-parameter float32 update ({mb:.3g} MB), TLS on loopback, "
        f"{args.chunk_bytes >> 10} KiB messages, {args.runs} interleaved runs"
    )
    labels = {
        "node": "node (gRPC, attested TLS, validate + fold)",
        "ssl": "plain Python ssl socket (recv_into)",
        "grpc": "gRPC alone (node's options, copy only)",
        "sha256": "SHA-256 of the payload alone, one core",
    }
    print(f"{'MB/s':<44}{'median':>8}{'p25':>8}{'p75':>8}{'best':>8}   runs")
    for key, label in labels.items():
        low, median, high = quartiles(rate[key])
        per_run = " ".join(f"{v:.0f}" for v in rate[key])
        print(f"{label:<44}{median:>8.0f}{low:>8.0f}{high:>8.0f}{max(rate[key]):>8.0f}   {per_run}")
    # wall: throughput ratio; CPU: the baseline's receiver CPU seconds over the node's for the same bytes (what the
    # ratio would be if each had a core to itself), less sensitive to other work on the machine than wall time
    print(f"\n{'ratio (the higher the better for the node)':<44}{'medians':>8}   {'95% CI':<15}{'per run, p25-p75'}")
    # MB per second of wall time and MB per CPU second of the receiving process (medians of rates)
    per = {key: [mb / s for s in runs[key]] for key in runs if key != "owner_hash" and not key.startswith("thread:")}
    with_hash = [mb / (n + h) for n, h in zip(runs["node"], runs["owner_hash"], strict=True)]
    print(ratio_line("node / ssl, wall", per["node"], per["ssl"]))
    print(ratio_line("node / ssl, receiver CPU", per["node_cpu"], per["ssl_cpu"]))
    print(ratio_line("node / ssl, wall, owner's hash counted", with_hash, per["ssl"]))
    print(ratio_line("gRPC alone / ssl, wall", per["grpc"], per["ssl"]))
    print(ratio_line("gRPC alone / ssl, receiver CPU", per["grpc_cpu"], per["ssl_cpu"]))
    print(ratio_line("node / gRPC alone, wall", per["node"], per["grpc"]))
    print(ratio_line("node / gRPC alone, receiver CPU", per["node_cpu"], per["grpc_cpu"]))
    print(ratio_line("SHA-256 alone / ssl, wall", per["sha256"], per["ssl"]))
    print(f"{'(owner hashed its payload before, median s)':<44}{statistics.median(runs['owner_hash']):>8.2f}")
    # CPU seconds spent while the bytes moved, both processes: near 2 x the wall time means the 2 cores were full
    print(f"\n{'CPU seconds during the transfer (medians)':<44}{'receiver':>10}{'sender':>10}{'wall':>10}")
    for path in ("node", "grpc", "ssl"):
        cpu, sender_cpu = statistics.median(runs[f"{path}_cpu"]), statistics.median(runs[f"{path}_sender_cpu"])
        print(f"{labels[path]:<44}{cpu:>10.2f}{sender_cpu:>10.2f}{statistics.median(runs[path]):>10.2f}")
    # what bounds the node: where its CPU went during the upload, thread by thread (/proc/self/task, 10 ms ticks)
    print(f"\n{'node CPU seconds by thread (medians)':<60}{'CPU s':>8}")
    kinds = sorted((k for k in runs if k.startswith("thread:")), key=lambda k: -statistics.median(runs[k]))
    for key in kinds:
        if statistics.median(runs[key]) >= 0.005:
            print(f"{key.removeprefix('thread:'):<60}{statistics.median(runs[key]):>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    sender = sub.add_parser("sender")
    for flag in ("--dir", "--kind", "--name", "--address"):
        sender.add_argument(flag, required=True)
    sender.add_argument("--params", type=int, required=True)
    sender.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES)
    parser.add_argument(
        "--params",
        type=lambda text: [int(p) for p in text.split(",")],
        default=[10_000_000, 100_000_000],
        help="parameters of the throughput update, comma-separated for several sizes (default: 40 MB and 400 MB)",
    )
    parser.add_argument("--runs", type=int, default=9, help="interleaved repetitions of each path, for each size")
    parser.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES, help="bytes per upload message")
    parser.add_argument("--skip-memory", action="store_true", help="measure throughput only (no 10-owner memory run)")
    parser.add_argument("--skip-throughput", action="store_true", help="measure memory only")
    parser.add_argument("--mem-params", type=int, default=10_000_000)
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args()
    if args.smoke:
        args.params, args.runs, args.mem_params, args.owners = [100_000], 2, 100_000, 2
    if args.mode == "sender":
        run_sender(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        mem_dir, tput_dir = Path(tmp) / "mem", Path(tmp) / "tput"
        mem_dir.mkdir()
        tput_dir.mkdir()
        memory = None if args.skip_memory else node_memory(mem_dir, args.mem_params, args.owners)
        sizes = [] if args.skip_throughput else args.params
        runs: dict[int, dict[str, list[float]]] = {}
        for params in sizes:
            size_dir = tput_dir / str(params)
            size_dir.mkdir()
            runs[params] = throughput_runs(size_dir, params, args)
    for params, figures in runs.items():
        print_throughput(figures, params, args)
    if memory is not None:
        peak, model_bytes, baseline = memory
        print(f"\nnode memory, {args.owners} owners uploading a {args.mem_params / 1e6:.0f}M-parameter model at once")
        print(f"{'model size (MB)':<44}{model_bytes / 1e6:>10.1f}")
        print(f"{'node peak RSS growth (MB)':<44}{peak / 1e6:>10.1f}")
        print(f"{'ratio peak growth / model size':<44}{peak / model_bytes:>10.2f}")
        print(f"{'(process RSS before the node, MB)':<44}{baseline / 1e6:>10.1f}")


if __name__ == "__main__":
    main()

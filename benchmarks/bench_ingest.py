"""Upload ingest through the node over TLS on loopback vs a plain Python `ssl` socket, and node memory.

1. Throughput: one data owner (another process) streams a float32 update (by default 40 MB, then 400 MB) to the
   node (attested, pinned gRPC/TLS, header checks, NaN checks, staging, the commitment's SHA-256 checked, fold);
   baseline: the same bytes through a plain `ssl` socket into a preallocated buffer (recv_into), sender in
   another process as well. A third path, gRPC alone (the node's channel options and framing, a servicer that
   only copies each message into a buffer: no checks, no hash, no fold), shows what the transport itself carries.
   The paths run --runs times each, interleaved in alternating order (node, ssl, gRPC alone, ssl + node ingest,
   then the reverse, ...), so a change in machine load hits them alike: one run of the `ssl` baseline moves by several
   times from run to run on a shared VM. Quoted: the ratio of the medians with a bootstrap 95% interval, and
   the quartiles of the per-repetition ratios; for wall time and, less sensitive to load, for the receiving
   process's CPU seconds (user + system, all threads) over the same bytes.
   A fourth path, ssl + node ingest, is the `ssl` socket with the node's ingest on its bytes, by the node's own
   pieces (header checks, recv_into straight into a staging slot, NaN/Inf, SHA-256 on the digest thread, the
   commitment, the fold: benchmarks/ingest/ingest_raw.py): what moving the upload's bytes off gRPC can reach.
   The receivers run in this process with the node's malloc settings (enclave/malloc_tuning.py), as the node's
   own process does; the senders, like data owners, with glibc's defaults.
2. Memory: node peak RSS while 10 owner processes upload a 10M-parameter model at once (ratio to model size).

    .venv/bin/python benchmarks/bench_ingest.py [--runs 9] [--skip-memory] [--params 10000000,100000000]
        [--mem-params 10000000] [--owners 10] [--chunk-bytes 1048576] [--smoke]
"""
# The paths, senders and tables live in benchmarks/ingest/ (run through this script).

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "ingest"))

from ingest_paths import (
    grpc_alone_throughput,
    node_throughput,
    ssl_ingest_throughput,
    ssl_throughput,
)
from ingest_report import print_throughput
from ingest_senders import run_sender
from ingest_setup import model, prepare, report_of, spawn_sender

from enclavefl.core.codec import encode_weights
from enclavefl.enclave.malloc_tuning import return_freed_memory_to_the_os
from enclavefl.enclave.node import AggregatorNode
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES


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
            report_of(s)
        wait_sealed(node, timeout=1200)
    finally:
        node.stop(0)
    return peak_rss_bytes() - baseline, params * 4, baseline


def sha256_seconds(params: int) -> tuple[float, float]:
    """The payload hash the node must compute for the receipt's commitment, alone (no network, no copies): its
    wall and CPU seconds."""
    import hashlib

    payload = encode_weights(model(params, 1.0))
    start, cpu = time.perf_counter(), time.process_time()
    hashlib.sha256(payload).digest()
    return time.perf_counter() - start, time.process_time() - cpu


def throughput_runs(work: Path, params: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds (and CPU seconds) per repetition of each path, interleaved so that load changes hit them alike.

    Each repetition runs the paths back to back, in alternating order (node, ssl, gRPC alone, ssl + node ingest,
    then the reverse), so no path always runs first after a pause or last before one."""
    runs: dict[str, list[float]] = {}
    mb = params * 4 / 1e6
    order = ["node", "ssl", "grpc", "raw"]
    for i in range(args.runs):
        run_dir = work / f"run{i}"  # fresh credentials and job per run: each run is a whole new node
        run_dir.mkdir()
        measured: dict[str, dict[str, float]] = {}
        for path in order if i % 2 == 0 else order[::-1]:
            if path == "node":
                measured[path] = node_throughput(run_dir, params, args.chunk_bytes)
            elif path == "ssl":
                measured[path] = ssl_throughput(run_dir, params)
            elif path == "raw":
                measured[path] = ssl_ingest_throughput(run_dir, params)
            else:
                measured[path] = grpc_alone_throughput(run_dir, params, args.chunk_bytes)
        node, plain = measured["node"], measured["ssl"]
        sha256_wall, sha256_cpu = sha256_seconds(params)
        figures = {"owner_hash": node["owner_hash_seconds"], "sha256": sha256_wall, "sha256_cpu": sha256_cpu}
        for path, report in measured.items():
            figures[path] = report["seconds"]
            figures[f"{path}_cpu"] = report["receiver_cpu_seconds"]
            figures[f"{path}_sender_cpu"] = report["cpu_seconds"]
            figures.update({key: value for key, value in report.items() if ":" in key})
        for key, value in figures.items():
            runs.setdefault(key, []).append(value)
        raw = measured["raw"]
        print(
            f"{mb:.3g} MB run {i + 1}/{args.runs}: node {mb / node['seconds']:.0f} MB/s, "
            f"ssl {mb / plain['seconds']:.0f} MB/s, gRPC alone {mb / measured['grpc']['seconds']:.0f} MB/s, "
            f"ssl + node ingest {mb / raw['seconds']:.0f} MB/s; / ssl: node {plain['seconds'] / node['seconds']:.2f}, "
            f"ssl + node ingest {plain['seconds'] / raw['seconds']:.2f} (wall), "
            f"{plain['receiver_cpu_seconds'] / node['receiver_cpu_seconds']:.2f}, "
            f"{plain['receiver_cpu_seconds'] / raw['receiver_cpu_seconds']:.2f} (receiver CPU)",
            flush=True,
        )
    return runs


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
    # the node's own process applies these at start (enclave/main.py); the receivers here run the node in-process
    return_freed_memory_to_the_os()
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
        print_throughput(figures, params, repetitions=args.runs, chunk_bytes=args.chunk_bytes)
    if memory is not None:
        peak, model_bytes, baseline = memory
        print(f"\nnode memory, {args.owners} owners uploading a {args.mem_params / 1e6:.0f}M-parameter model at once")
        print(f"{'model size (MB)':<44}{model_bytes / 1e6:>10.1f}")
        print(f"{'node peak RSS growth (MB)':<44}{peak / 1e6:>10.1f}")
        print(f"{'ratio peak growth / model size':<44}{peak / model_bytes:>10.2f}")
        print(f"{'(process RSS before the node, MB)':<44}{baseline / 1e6:>10.1f}")


if __name__ == "__main__":
    main()

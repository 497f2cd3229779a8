"""bench_ingest's tables: rates, ratios of medians with a bootstrap 95% interval, CPU by process and by thread.

print_throughput(runs, params, runs=9, chunk_bytes=512 * 1024)   # runs: figure -> one value per repetition
"""

from __future__ import annotations

import statistics

import numpy as np

LABELS = {
    "node": "node (gRPC, attested TLS, validate + fold)",
    "ssl": "plain Python ssl socket (recv_into)",
    "grpc": "gRPC alone (node's options, copy only)",
    "raw": "ssl + node ingest (recv_into the slot)",
    "sha256": "SHA-256 of the payload alone, one core",
}
THREADS = {
    "thread": "node",
    "raw": "ssl + node ingest",
    "raw step": "ssl + node ingest's receiving thread",  # time.thread_time by step
}  # per-thread CPU figures' prefix -> the path


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


def print_throughput(runs: dict[str, list[float]], params: int, *, repetitions: int, chunk_bytes: int) -> None:
    mb = params * 4 / 1e6
    rate = {key: [mb / s for s in runs[key]] for key in LABELS}
    print(
        f"\ningest of a {params / 1e6:g}M-parameter float32 update ({mb:.3g} MB), TLS on loopback, "
        f"{chunk_bytes >> 10} KiB messages, {repetitions} interleaved runs"
    )
    print(f"{'MB/s':<44}{'median':>8}{'p25':>8}{'p75':>8}{'best':>8}   runs")
    for key, label in LABELS.items():
        low, median, high = quartiles(rate[key])
        per_run = " ".join(f"{v:.0f}" for v in rate[key])
        print(f"{label:<44}{median:>8.0f}{low:>8.0f}{high:>8.0f}{max(rate[key]):>8.0f}   {per_run}")
    # wall: throughput ratio; CPU: the baseline's receiver CPU seconds over the path's for the same bytes (what the
    # ratio would be if each had a core to itself), less sensitive to other work on the machine than wall time
    print(f"\n{'ratio (the higher the better for the first)':<44}{'medians':>8}   {'95% CI':<15}{'per run, p25-p75'}")
    # MB per second of wall time and MB per CPU second of the receiving process (medians of rates)
    per = {key: [mb / s for s in values] for key, values in runs.items() if ":" not in key and key != "owner_hash"}
    with_hash = [mb / (n + h) for n, h in zip(runs["node"], runs["owner_hash"], strict=True)]
    print(ratio_line("node / ssl, wall", per["node"], per["ssl"]))
    print(ratio_line("node / ssl, receiver CPU", per["node_cpu"], per["ssl_cpu"]))
    print(ratio_line("ssl + node ingest / ssl, wall", per["raw"], per["ssl"]))
    print(ratio_line("ssl + node ingest / ssl, receiver CPU", per["raw_cpu"], per["ssl_cpu"]))
    print(ratio_line("node / ssl + node ingest, wall", per["node"], per["raw"]))
    print(ratio_line("node / ssl, wall, owner's hash counted", with_hash, per["ssl"]))
    print(ratio_line("gRPC alone / ssl, wall", per["grpc"], per["ssl"]))
    print(ratio_line("gRPC alone / ssl, receiver CPU", per["grpc_cpu"], per["ssl_cpu"]))
    print(ratio_line("node / gRPC alone, receiver CPU", per["node_cpu"], per["grpc_cpu"]))
    print(ratio_line("SHA-256 alone / ssl, wall", per["sha256"], per["ssl"]))
    # the best receiver CPU ratio any receiver that hashes the payload can reach: ssl's receive plus SHA-256, nothing
    # else (no checks, no fold, no framing), against ssl's receive
    hashed = [mb / (r + h) for r, h in zip(runs["ssl_cpu"], runs["sha256_cpu"], strict=True)]
    print(ratio_line("ceiling: (ssl + SHA-256) / ssl, receiver CPU", hashed, per["ssl_cpu"]))
    print(f"{'(owner hashed its payload before, median s)':<44}{statistics.median(runs['owner_hash']):>8.2f}")
    # CPU seconds spent while the bytes moved, both processes: near 2 x the wall time means the 2 cores were full
    print(f"\n{'CPU seconds during the transfer (medians)':<44}{'receiver':>10}{'sender':>10}{'wall':>10}")
    for path in ("node", "raw", "grpc", "ssl"):
        cpu, sender_cpu = statistics.median(runs[f"{path}_cpu"]), statistics.median(runs[f"{path}_sender_cpu"])
        print(f"{LABELS[path]:<44}{cpu:>10.2f}{sender_cpu:>10.2f}{statistics.median(runs[path]):>10.2f}")
    # what bounds each: where its CPU went during the upload, thread by thread (/proc/self/task, 10 ms ticks)
    for prefix, path in THREADS.items():
        print(f"\n{path + ': receiver CPU seconds by thread (medians)':<60}{'CPU s':>8}")
        keys = [k for k in runs if k.startswith(prefix + ":")]
        for key in sorted(keys, key=lambda k: -statistics.median(runs[k])):
            if statistics.median(runs[key]) >= 0.005:
                print(f"{key.removeprefix(prefix + ':'):<60}{statistics.median(runs[key]):>8.2f}")

"""Many owners on one node (issue 25): round time, node CPU per owner per round, node RSS per owner, thread count.

The node runs in a process of its own (an AggregatorNode on the INSECURE simulated enclave, default limits,
served over gRPC/TLS on loopback). N owners are spread over a few load processes, one thread each, each with its
own key, its own TLS connection, a real attestation (the simulated quote verified by dcap-qvl against the
policy), a real join, and every round: a long poll for the round's opening (skipped when the signature's answer
already carried it), an upload of a small model with its commitment (answered at the seal), the receipt verified
and signed back (answered at the next opening). K = N: every round needs every owner.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_many_owners.py [--owners 100 300 1000] [--rounds 6]
        [--load-processes 4] [--src SRC [BASELINE_SRC ...]] [--repeat K] [--smoke]

    # against a baseline in the same run, interleaved (N by N, run by run), medians of K runs:
    BASE=$(mktemp -d) && git archive <commit> | tar -x -C "$BASE"
    PYTHONPATH=src .venv/bin/python benchmarks/bench_many_owners.py --src src "$BASE/src" --repeat 3

Measured in the node's process at each release: the time, its CPU time (user + system), per thread too, its RSS
and its thread count; in each load process, its CPU time every 50 ms; and the calls each owner made. Reported per
N (one JSON line per run, then a table of medians): the median round time over rounds 2..R (round 1 includes
connecting and attesting), the node's CPU per owner per round over the same rounds and the event-loop thread's
share of it, the load generator's CPU per round over the same interval, the calls per owner per round, the node's
RSS growth from before the first owner connected to the end divided by N (and the highest RSS sampled every 20 ms,
the same way), the answer bytes per owner per round, and the node's threads before the owners and at most during
the rounds. The JSON lines also give where the node's memory was (glibc's heap in use and freed but kept, at each
release and at the highest RSS; many_owners/node_probe.py) and the answer bytes by RPC.

    BENCH_TRACEMALLOC=1      Python's own share, and the Python lines holding the most at the highest RSS (slower)
    BENCH_NODE_WRAPPER=CMD   run the node's process under CMD (e.g. a profiler)

The load generator shares the machine's cores with the node, so the node's CPU alone is the figure to read against
a machine of its own; the JSON lines also break it down by thread.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent / "many_owners"))  # the node's probe (node_probe.py)
from node_probe import memory_breakdown  # noqa: E402

MODEL_VALUES = 256  # a small model: 256 float32 (1 KiB), sent inline in one message
HERE = Path(__file__).resolve()


def model(value: float) -> object:
    from enclavefl.core.weights import ModelWeights

    return ModelWeights({"w": np.full((MODEL_VALUES,), value, np.float32)})


def node_sample() -> dict[str, float]:
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    names = {t.native_id: t.name for t in threading.enumerate()}
    by_thread: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except OSError:
            continue
        name = names.get(int(task), comm).rstrip("_0123456789")
        by_thread[name] = by_thread.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {
        "by_thread": by_thread,  # type: ignore[dict-item]
        "t": time.monotonic(),
        "cpu": time.process_time(),
        "rss_kib": rss,
        "threads": len(os.listdir("/proc/self/task")),
    }


# --- the node's process ------------------------------------------------------------------------------------------
def serve_node(work: Path) -> None:
    from node_probe import NodeProbe

    from enclavefl import simulated_enclave
    from enclavefl.core.jobfile import load_job
    from enclavefl.enclave.malloc_tuning import return_freed_memory_to_the_os
    from enclavefl.enclave.node import AggregatorNode

    return_freed_memory_to_the_os()  # as the node's own process does (enclave/main.py): RSS as deployed
    tee, _ = simulated_enclave(work / "platform")
    job = load_job(work / "job.toml")
    most_threads = [0]
    probe = NodeProbe.install()  # answer bytes per RPC, RSS sampled every 20 ms (BENCH_TRACEMALLOC=1: Python's)

    def on_round(summary: object) -> None:
        sample = node_sample()
        most_threads[0] = max(most_threads[0], int(sample["threads"]))
        sample["most_threads"] = most_threads[0]
        sample["probe"] = probe.sample()
        print(json.dumps({"release": sample}), flush=True)

    node = AggregatorNode(job=job, tee=tee, initial_model=model(0.0), on_round=on_round)  # type: ignore[arg-type]
    node.serve_grpc().start()
    (work / "node.pem").write_bytes(node.certificate_pem)

    def sample_threads() -> None:  # the most threads at any moment, not only at releases
        while True:
            tasks = os.listdir("/proc/self/task")
            if len(tasks) > most_threads[0]:
                most_threads[0] = len(tasks)
                names = sorted(Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in tasks)
                print(json.dumps({"most_threads": names}), file=sys.stderr, flush=True)
            time.sleep(0.05)

    threading.Thread(target=sample_threads, daemon=True).start()  # counted in both samples: the node's + 1
    print(json.dumps({"address": node.address, "idle": {**node_sample(), "probe": probe.sample()}}), flush=True)
    node.wait()
    time.sleep(2.0)  # the last signers are still being answered
    print(json.dumps({"top": probe.top_lines(), "end": probe.sample()}), flush=True)
    node.stop(0)


# --- a load process: owners, one thread each --------------------------------------------------------------------
def run_owners(work: Path, address: str, names: list[str], rounds: int) -> None:
    from enclavefl import simulated_enclave
    from enclavefl.core.codec import encode_weights
    from enclavefl.core.jobfile import load_job
    from enclavefl.core.messages import RoundPhase
    from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
    from enclavefl.core.update_message import UpdateMessage
    from enclavefl.owner.attested import connect_data_owner
    from enclavefl.transport.owner_tls import OwnerCredentials

    _, policy = simulated_enclave(work / "platform")
    job = load_job(work / "job.toml")
    payload = encode_weights(model(1.0))  # type: ignore[arg-type]
    failures: list[str] = []
    calls: collections.Counter[str] = collections.Counter()

    def owner(name: str) -> None:
        try:
            credentials = OwnerCredentials.load(work / "keys" / f"{name}.key", work / "keys" / f"{name}.pem")
            attested = connect_data_owner(address, name=name, job=job, policy=policy, credentials=credentials)
            client, key = attested.client, attested.signing_key
            assert key is not None
            status = client.node_status()
            for r in range(1, rounds + 1):
                while not (status.phase is RoundPhase.OPEN and status.round == r):
                    calls["poll_open"] += 1
                    status = client.node_status(seen=status, wait_seconds=5.0)
                message = UpdateMessage.of(owner=name, round=r, num_examples=1, payload=payload)
                calls["upload"] += 1
                status = client.upload_for_status(message, wait_seconds=5.0) or client.node_status()
                while status.rounds_completed < r and not (status.phase is RoundPhase.SIGNING and status.round == r):
                    calls["poll_seal"] += 1
                    status = client.node_status(seen=status, wait_seconds=5.0)
                if status.rounds_completed < r:
                    calls["ack"] += 1
                    if status.pending is None:
                        calls["pending"] += 1
                    pending = status.pending or client.pending_receipt()
                    verify_receipt(pending, attested.node_public_key_pem)
                    ack = sign_acknowledgement(key, owner=name, receipt=pending)
                    status = client.acknowledge_for_status(ack) or client.node_status()
            client.close()
        except Exception as exc:  # counted and printed: a benchmark with failed owners says so
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    samples: list[tuple[float, float]] = []

    def sample_cpu() -> None:  # (time, this process's CPU): the parent reads the load's CPU between two releases
        while True:
            samples.append((time.monotonic(), time.process_time()))
            time.sleep(0.05)

    threading.Thread(target=sample_cpu, daemon=True).start()
    threads = [threading.Thread(target=owner, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.append((time.monotonic(), time.process_time()))
    print(json.dumps({"failures": failures, "calls": calls, "cpu_samples": samples}), flush=True)


# --- the parent: one run per N ----------------------------------------------------------------------------------
def one_run(owners: int, rounds: int, load_processes: int, work: Path, src: Path) -> dict[str, object]:
    from enclavefl.core.codec import encode_weights
    from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
    from enclavefl.core.jobfile_write import dump_job
    from enclavefl.transport.owner_tls import OwnerCredentials

    names = [f"owner{i:04d}" for i in range(owners)]
    (work / "keys").mkdir(parents=True, exist_ok=True)
    enrolled = []
    for name in names:
        credentials = OwnerCredentials.generate(name)
        credentials.save(work / "keys" / f"{name}.key", work / "keys" / f"{name}.pem")
        enrolled.append(DataOwnerSpec(name=name, certificate_pem=credentials.certificate_pem.decode()))
    initial = model(0.0)
    job = JobSpec(
        name=f"many-owners-{owners}",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        min_contributions=owners,
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        round_deadline_seconds=600.0,
        model_schema=initial.schema,  # type: ignore[attr-defined]
        initial_model_sha256=initial.sha256().hex(),  # type: ignore[attr-defined]
        data_owners=tuple(enrolled),
    )
    (work / "job.toml").write_text(dump_job(job))
    (work / "init.safetensors").write_bytes(encode_weights(initial))  # type: ignore[arg-type]
    env = {**os.environ, "PYTHONPATH": str(src)}  # the node's and the owners' code (--src)
    wrapper = os.environ.get("BENCH_NODE_WRAPPER", "").split()  # e.g. "heaptrack -o FILE": the node under a profiler
    node = subprocess.Popen(
        [*wrapper, sys.executable, str(HERE), "--serve-node", str(work)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert node.stdout is not None
    started = next(json.loads(line) for line in node.stdout if line.startswith('{"address"'))  # after a wrapper's
    address, idle = started["address"], started["idle"]
    slices = [names[i::load_processes] for i in range(min(load_processes, owners))]
    loads = [
        subprocess.Popen(
            [sys.executable, str(HERE), "--run-owners", str(work), address, str(rounds), *part],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for part in slices
    ]
    threading.Thread(target=stop_when_owners_gone, args=(node, loads), daemon=True).start()
    releases, tail = [], {}
    for line in node.stdout:
        if line.startswith('{"release"'):
            releases.append(json.loads(line)["release"])
        elif line.startswith('{"top"'):
            tail = json.loads(line)
    node.wait(60)
    failures: list[str] = []
    calls: collections.Counter[str] = collections.Counter()
    reports = []
    for load in loads:
        out, _ = load.communicate(timeout=120)
        report = json.loads(out.strip().splitlines()[-1])
        failures += report["failures"]
        calls.update(report["calls"])
        reports.append(report["cpu_samples"])
    if len(releases) < rounds:
        raise SystemExit(f"{owners} owners: only {len(releases)} of {rounds} rounds released; failures {failures[:3]}")
    # rounds 2..R (round 1 includes connecting and attesting): from the first release to the last
    start, end = (releases[0], releases[-1]) if rounds > 1 else (idle, releases[0])
    counted = max(1, rounds - 1)
    cpu = end["cpu"] - start["cpu"]
    load_cpu = sum(cpu_at(samples, end["t"]) - cpu_at(samples, start["t"]) for samples in reports)
    by_thread = {k: (v - start["by_thread"].get(k, 0.0)) / counted for k, v in end["by_thread"].items()}
    return {
        "owners": owners,
        "round_s": statistics.median(b["t"] - a["t"] for a, b in itertools.pairwise([start, *releases[1:]])),
        "node_cpu_ms_per_owner_round": 1000 * cpu / (owners * counted),
        "node_cpu_s_per_round": cpu / counted,
        "loop_thread_ms_per_owner_round": 1000 * by_thread.get("enclavefl-rpc", 0.0) / owners,
        "load_cpu_s_per_round": load_cpu / counted,
        "calls_per_owner_round": sum(calls.values()) / (owners * rounds),
        "calls_by_kind": {k: round(v / (owners * rounds), 3) for k, v in sorted(calls.items())},
        "rss_kib_per_owner": (releases[-1]["rss_kib"] - idle["rss_kib"]) / owners,
        **memory_breakdown(idle, start, end, releases, tail, owners, counted),
        "threads_idle": idle["threads"],
        "threads_most": releases[-1]["most_threads"],
        "node_cpu_s_per_round_by_thread": {k: round(v, 4) for k, v in sorted(by_thread.items()) if v > 0},
        "failures": len(failures),
    }


def stop_when_owners_gone(node: subprocess.Popen[str], loads: list[subprocess.Popen[str]]) -> None:
    """Stop the node if every load process has exited and the node still waits for rounds (owners that crashed:
    the run then ends and reports them, rather than waiting for ever)."""
    for load in loads:
        load.wait()
    try:
        node.wait(30)
    except subprocess.TimeoutExpired:
        node.terminate()


def cpu_at(samples: list[tuple[float, float]], t: float) -> float:
    """A load process's CPU time at monotonic time `t` (its last sample at or before `t`)."""
    before = [cpu for when, cpu in samples if when <= t]
    return before[-1] if before else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--load-processes", type=int, default=4)
    parser.add_argument(
        "--src",
        type=Path,
        nargs="+",
        default=[REPO / "src"],
        help="the enclavefl source tree(s) the node and the owners run (default: this checkout's src/); with "
        "several (e.g. this one and a baseline's, from `git archive`), each N runs them in turn, --repeat "
        "times, interleaved, and the table gives each one's medians",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per N and source tree (interleaved)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    parser.add_argument("--serve-node", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-owners", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_node is not None:
        return serve_node(args.serve_node)
    if args.run_owners is not None:
        work, address, rounds, *names = args.run_owners
        return run_owners(Path(work), address, names, int(rounds))
    if args.smoke:
        args.owners, args.rounds, args.load_processes, args.repeat = [3], 2, 1, 1

    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start", flush=True)
    runs: dict[tuple[int, Path], list[dict[str, object]]] = collections.defaultdict(list)
    for owners in args.owners:
        for _ in range(args.repeat):
            for src in args.src:
                with tempfile.TemporaryDirectory(prefix=f"bench-many-{owners}-") as work:
                    row = one_run(owners, args.rounds, args.load_processes, Path(work), src.resolve())
                runs[(owners, src)].append(row)
                print(json.dumps({"src": str(src), "load": round(os.getloadavg()[0], 2), **row}), flush=True)
    print(f"load at end: {os.getloadavg()[0]:.2f}")
    print()
    print(TABLE_HEADER)
    for (owners, src), rows in runs.items():
        print(table_row(owners, src if len(args.src) > 1 else None, rows))


TABLE_HEADER = (
    "| owners | round time (s) | node CPU per owner per round (ms) | of which the event loop (ms) | load generator "
    "CPU per round (s) | calls per owner per round | node RSS per owner (KiB) | highest node RSS per owner (KiB) | "
    "answer bytes per owner per round (KiB) | node threads (idle / most) | failed owners |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(owners: int, src: Path | None, rows: list[dict[str, object]]) -> str:
    """One line of the table: medians over the runs of `rows` (each run's round time is its median round)."""

    def med(key: str) -> float:  # a dict (answer bytes by RPC) counts as its sum
        return statistics.median(
            sum(v.values()) if isinstance(v := row[key], dict) else float(v)  # type: ignore[arg-type]
            for row in rows
        )

    label = f"{owners} ({src})" if src is not None else str(owners)
    return (
        f"| {label} | {med('round_s'):.3f} | {med('node_cpu_ms_per_owner_round'):.2f} "
        f"| {med('loop_thread_ms_per_owner_round'):.2f} | {med('load_cpu_s_per_round'):.2f} "
        f"| {med('calls_per_owner_round'):.2f} | {med('rss_kib_per_owner'):.0f} "
        f"| {med('peak_rss_kib_per_owner'):.0f} | {med('answer_kib_per_owner_round'):.1f} "
        f"| {rows[0]['threads_idle']} / {max(int(row['threads_most']) for row in rows)} "  # type: ignore[call-overload]
        f"| {sum(int(row['failures']) for row in rows)} |"  # type: ignore[call-overload]
    )


if __name__ == "__main__":
    main()

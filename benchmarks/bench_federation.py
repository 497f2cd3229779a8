"""A whole federation as real processes: N data owners x P parameters x R rounds, node memory and round time.

    .venv/bin/python benchmarks/bench_federation.py --preset seed   # 2 owners, Linear(2, 1), 10 rounds
    .venv/bin/python benchmarks/bench_federation.py --preset big    # 10 owners, Linear(10000, 1000), 3 rounds
    .venv/bin/python benchmarks/bench_federation.py --preset big --owners 4 --in-features 2000   # quicker
    .venv/bin/python benchmarks/bench_federation.py --preset large --no-check   # 2 owners x a 400 MB model

The node (`enclavefl node serve`, simulated enclave, sealed checkpoints on) and every data owner run as their own
processes on loopback (demos/process_federation.py); this process is the model owner: it submits the initial
model, watches the rounds and downloads the final model, and checks that model against plain FedAvg computed
here with the same task. Every owner downloads and uploads at the same moments, so the node's peak is the
"all owners at once" peak.

Memory is read from /proc/PID/status of the node: its idle RSS once it listens (before any model exists),
VmRSS sampled every few milliseconds, and VmHWM (the kernel's own peak) at the end. Growth = peak - idle,
reported in MiB and as a multiple of the model's size. Owner peak RSS is each owner's VmHWM (sampled while it
runs). Figures on a shared machine vary; the ratio to the model is the stable one.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enclavefl.core.job import JobSpec, StrategySpec, TrainConfig
from enclavefl.core.jobfile import read_initial_model
from enclavefl.core.weights import ModelWeights
from enclavefl.demos.process_federation import (
    FederationFiles,
    ProcessGroup,
    data_owner_command,
    model_owner_session,
    node_command,
    wait_for_address,
    write_federation_files,
)
from enclavefl.owner.model_owner_files import download_final_model

MIB = 1024 * 1024
TASK_TEMPLATE = '''"""Benchmark task: nn.Linear({inputs}, {outputs}, bias={bias}), MSE loss, torch.optim.SGD."""
import torch

from enclavefl.task import TorchTask


def model() -> torch.nn.Module:
    return torch.nn.Linear({inputs}, {outputs}, bias={bias})


TASK = TorchTask(model_factory=model, loss_fn=torch.nn.functional.mse_loss)
'''


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    owners: int
    inputs: int
    outputs: int
    bias: bool
    rounds: int
    rows: int  # examples per owner
    weighted: bool
    # how often the node's and owners' RSS is read (VmHWM, the kernel's own peak, is read at the end as well): the
    # sampler shares this process and its cores with the round it measures, so a tiny model is sampled less often
    sample_seconds: float = 0.005


PRESETS = {
    "seed": Shape(owners=2, inputs=2, outputs=1, bias=True, rounds=10, rows=2, weighted=False, sample_seconds=0.05),
    "big": Shape(owners=10, inputs=10000, outputs=1000, bias=False, rounds=3, rows=8, weighted=True),
    # issue 25 item 5: a 400 MB model (381 MiB of float32); two owners, each holding about 2 GiB while it trains
    "large": Shape(owners=2, inputs=100_000, outputs=1000, bias=False, rounds=3, rows=2, weighted=True),
}


class RssSampler:
    """VmRSS and VmHWM of some processes, every `interval` seconds on a thread (kB figures from /proc)."""

    def __init__(self, interval: float = 0.005) -> None:
        self._pids: dict[str, int] = {}
        self.peak_rss: dict[str, int] = {}
        self.hwm: dict[str, int] = {}
        self.timeline: list[tuple[float, int]] = []  # (perf_counter, node VmRSS)
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._pids[name] = pid

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self, name: str) -> tuple[int, int] | None:
        """(VmRSS, VmHWM) in bytes now, or None when the process is gone."""
        with self._lock:
            pid = self._pids.get(name)
        return read_status(pid) if pid is not None else None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                pids = dict(self._pids)
            for name, pid in pids.items():
                status = read_status(pid)
                if status is None:
                    continue
                rss, hwm = status
                if name == "node":
                    self.timeline.append((time.perf_counter(), rss))
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
                self.hwm[name] = max(self.hwm.get(name, 0), hwm)


def read_status(pid: int) -> tuple[int, int] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (KeyError, ValueError, IndexError):
        return None  # a zombie has no memory lines


def build_files(workdir: Path, shape: Shape) -> tuple[FederationFiles, Path]:
    import torch

    from enclavefl.core.torch_adapter import weights_from_module

    task_file = workdir / "bench_task.py"
    task_file.write_text(TASK_TEMPLATE.format(inputs=shape.inputs, outputs=shape.outputs, bias=shape.bias))
    torch.manual_seed(0)
    initial = weights_from_module(torch.nn.Linear(shape.inputs, shape.outputs, bias=shape.bias))
    rng = np.random.default_rng(11)  # benchmark data, not a secret
    datasets = {
        f"owner-{i:02d}": {
            "x": rng.standard_normal((shape.rows + i % 3, shape.inputs), dtype=np.float32),
            "y": rng.standard_normal((shape.rows + i % 3, shape.outputs), dtype=np.float32),
        }
        for i in range(shape.owners)
    }
    job = JobSpec(
        name="bench-federation",
        rounds=shape.rounds,
        train=TrainConfig(local_steps=1, lr=0.05),
        strategy=StrategySpec(name="fedavg", params={"weighted": shape.weighted}),
        min_contributions=shape.owners,
        round_deadline_seconds=600.0,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    files = write_federation_files(workdir / "fed", job=job, initial=initial, datasets=datasets)
    return files, task_file


def plain_fedavg(files: FederationFiles, task_file: Path, shape: Shape, rounds: int) -> ModelWeights:
    """The same job as plain PyTorch FedAvg in this process: each owner's step from the global, weighted mean."""
    import importlib.util

    import torch
    from safetensors.numpy import load_file

    from enclavefl.core.jobfile import load_job
    from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
    from enclavefl.task import TensorData

    spec = importlib.util.spec_from_file_location("bench_task", task_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    task = module.TASK
    job = load_job(files.job)
    current = read_initial_model(files.initial_model)
    for _ in range(rounds):
        total = 0.0
        acc: dict[str, np.ndarray] | None = None
        for owner in files.owners.values():
            raw = load_file(str(owner.data))
            data = TensorData(x=torch.from_numpy(raw["x"]), y=torch.from_numpy(raw["y"]))
            model = task.create_model()
            load_weights_into(model, current)
            result = task.train(model, data, job.train, global_model=None)
            weight = float(result.num_examples) if shape.weighted else 1.0
            trained = weights_from_module(model)
            if acc is None:
                acc = {k: np.zeros(v.shape, np.float64) for k, v in trained.items()}
            for k, v in trained.items():
                acc[k] += weight * v.astype(np.float64)
            total += weight
        assert acc is not None
        current = ModelWeights({k: (v / total).astype(np.float32) for k, v in acc.items()})
    return current


def run(
    shape: Shape, *, cli_owners: bool, check: bool, timeline: bool = False, submit_when: str = "attested"
) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _run(shape, cli_owners=cli_owners, check=check, timeline=timeline, submit_when=submit_when)


def print_timeline(samples: list[tuple[float, int]], marks: dict[str, float], idle: int, model_bytes: int) -> None:
    """The node's RSS growth over time in model multiples, the peak of each 0.25 s, with the job's events."""
    if not samples:
        return
    start = samples[0][0]
    buckets: dict[int, int] = {}
    for t, rss in samples:
        key = int((t - start) / 0.25)
        buckets[key] = max(buckets.get(key, 0), rss)
    events = sorted((t, name) for name, t in marks.items())
    for key in sorted(buckets):
        t0 = start + key * 0.25
        here = [name for t, name in events if t0 <= t < t0 + 0.25]
        growth = (buckets[key] - idle) / model_bytes
        print(f"    {key * 0.25:7.2f}s {growth:6.2f}x {'#' * max(0, int(growth * 8))} {' '.join(here)}")


def _run(shape: Shape, *, cli_owners: bool, check: bool, timeline: bool, submit_when: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        workdir = Path(tmp)
        files, task_file = build_files(workdir, shape)
        model_bytes = read_initial_model(files.initial_model).nbytes
        sampler = RssSampler(interval=shape.sample_seconds).start()
        arrivals: list[float] = []
        with ProcessGroup() as group:
            started = time.perf_counter()
            node = group.start("node", node_command(files, port_file=workdir / "node.addr"))
            sampler.watch("node", node.popen.pid)
            address = wait_for_address(workdir / "node.addr", node)
            time.sleep(1.0)  # let the node settle
            listening = sampler.sample("node")
            assert listening is not None, "the node exited before it was measured"
            owners = []
            for name in files.owners:
                child = group.start(
                    name, data_owner_command(files, name, address, task=str(task_file) + ":TASK", light=not cli_owners)
                )
                sampler.watch(name, child.popen.pid)
                owners.append(child)
            session = model_owner_session(files, address)
            # The idle baseline: every party attested and joined, no model yet (code the first calls import
            # is not memory the model costs). Each owner prints "node attested" once it did, after its warm-up;
            # its first lines (policy warnings) come before the warm-up, which must not overlap round 1.
            # (`--submit-when any-line` keeps the old rule, which did: to measure what it cost round 1.)
            ready = "" if submit_when == "any-line" else "node attested"
            while not all(any(ready in line for line in child.lines) for child in owners):
                if group.failed():
                    raise SystemExit(f"{group.failed()[0].name} failed{group.failed()[0].tail()}")
                time.sleep(0.05)
            time.sleep(1.0)
            idle = sampler.sample("node")
            assert idle is not None, "the node exited before it was measured"
            try:
                submitted = time.perf_counter()
                session.submit_initial_model(read_initial_model(files.initial_model))
                accepted = time.perf_counter()
                summaries = []
                for summary in session.watch():
                    arrivals.append(time.perf_counter())
                    summaries.append(summary)
                final = download_final_model(
                    session, out=workdir / "final.safetensors", receipts_out=workdir / "receipts.json"
                )
                finished = time.perf_counter()
                end = sampler.sample("node")
            finally:
                session.close()
            failed = group.failed()
            if failed:
                raise SystemExit(f"{failed[0].name} failed{failed[0].tail()}")
        sampler.stop()
        if timeline:
            marks = {"submit": submitted, **{f"round{i + 1}": t for i, t in enumerate(arrivals)}, "end": finished}
            print_timeline(sampler.timeline, marks, idle[0], model_bytes)
        node_hwm = max(sampler.hwm.get("node", 0), end[1] if end else 0)
        node_peak_rss = max(sampler.peak_rss.get("node", 0), end[0] if end else 0)
        owner_hwm = [sampler.hwm.get(name, 0) for name in files.owners]
        if len(summaries) != shape.rounds or any(s.contributions != shape.owners for s in summaries):
            raise SystemExit(f"unexpected rounds: {[(s.round, s.contributions) for s in summaries]}")
        error = float("nan")
        if check:
            expected = plain_fedavg(files, task_file, shape, shape.rounds)
            error = max(
                float(np.max(np.abs(np.subtract(final.weights[k], expected[k], dtype=np.float64)))) for k in expected
            )
        rounds = np.diff([submitted, *arrivals])
        return {
            "model_mib": model_bytes / MIB,
            "total_s": finished - started,
            "submit_to_end_s": finished - submitted,
            "round_median_ms": statistics.median(rounds[1:] if len(rounds) > 1 else rounds) * 1000,
            "round_1_ms": rounds[0] * 1000,
            "round_1_x_median": rounds[0] / statistics.median(rounds[1:] if len(rounds) > 1 else rounds),
            "round_1_submit_ms": (accepted - submitted) * 1000,  # the initial model's upload, until the node took it
            "round_1_after_submit_ms": (arrivals[0] - accepted) * 1000,
            "node_listening_mib": listening[0] / MIB,
            "node_idle_mib": idle[0] / MIB,
            "node_growth_over_listening_x_model": (node_hwm - listening[0]) / model_bytes,
            "node_peak_hwm_mib": node_hwm / MIB,
            "node_growth_mib": (node_hwm - idle[0]) / MIB,
            "node_growth_x_model": (node_hwm - idle[0]) / model_bytes,
            "node_growth_sampled_x_model": (node_peak_rss - idle[0]) / model_bytes,
            "budget_x_model": (2 * model_bytes + 64 * MIB) / model_bytes,
            "owner_peak_mib_max": max(owner_hwm) / MIB,
            "owner_peak_mib_median": statistics.median(owner_hwm) / MIB,
            "max_abs_error_vs_plain_fedavg": error,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="seed")
    parser.add_argument("--owners", type=int, help="data owner processes (default: the preset's)")
    parser.add_argument("--in-features", type=int, help="Linear input size (parameters = in x out)")
    parser.add_argument("--out-features", type=int, help="Linear output size")
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--cli-owners",
        action="store_true",
        help="owners through `enclavefl data-owner run` instead of its argparse twin (slower start)",
    )
    parser.add_argument("--timeline", action="store_true", help="print the node's RSS growth every 0.25 s")
    parser.add_argument(
        "--submit-when",
        choices=("attested", "any-line"),
        default="attested",
        help="submit the initial model once every owner attested the node (default), or once each printed any "
        "line (the rule before issue 25: its first lines come before its warm-up, which then overlapped round 1)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with plain FedAvg")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.owners, args.rounds = "seed", 2, 2
    shape = PRESETS[args.preset]
    shape = dataclasses.replace(
        shape,
        owners=args.owners or shape.owners,
        inputs=args.in_features or shape.inputs,
        outputs=args.out_features or shape.outputs,
        rounds=args.rounds or shape.rounds,
    )
    params = shape.inputs * shape.outputs + (shape.outputs if shape.bias else 0)
    print(
        f"{shape.owners} owners x {params:,} parameters x {shape.rounds} rounds "
        f"({'weighted' if shape.weighted else 'unweighted'} FedAvg, K = {shape.owners})",
        flush=True,
    )
    figures = run(
        shape, cli_owners=args.cli_owners, check=not args.no_check, timeline=args.timeline, submit_when=args.submit_when
    )
    for key, value in figures.items():
        print(f"  {key:32s} {value:12.4g}")
    ok = figures["node_growth_x_model"] <= figures["budget_x_model"]
    print(
        f"node growth {figures['node_growth_x_model']:.2f}x model "
        f"({'within' if ok else 'OVER'} the 2x + 64 MiB budget = {figures['budget_x_model']:.2f}x here)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

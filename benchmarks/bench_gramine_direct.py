"""The node under Gramine's LibOS (`gramine-direct`) against the same node as an ordinary process, same job.

    .venv/bin/python benchmarks/bench_gramine_direct.py prepare FED              # a 2-owner, 3-round federation
    .venv/bin/enclavefl enclave init R --job FED/job.toml && packaging/enclave/build-release.sh R
    .venv/bin/python benchmarks/bench_gramine_direct.py run --release R --federation FED [--runs 3]
    .venv/bin/python benchmarks/bench_gramine_direct.py --smoke                  # the suite's run: native only

`prepare` writes the federation's keys, data and job (the tiny task of tests/integration: nn.Linear(2, 1)); the
release is built for that job (docs/gramine.md, "Release"). `run` then runs the federation `--runs` times each
way, interleaved (native, direct, native, ...): the node once as `enclavefl node serve` and once under
`gramine-direct` from the release's own manifest (INSECURE variant: test key for the encrypted state, simulated
TEE; tee/insecure/direct_manifest.py), data owners and model owner outside it on loopback. It prints, for each
way, the node's start-up (to its listening address), the median time of each round (round 1 counts from the
node's start: the owners' start-up and attestation are in it), the node's peak threads and memory
(/proc/PID/status: VmHWM resident, VmPeak address space), the ratio direct / native of the medians, and whether
both ways released the same final model (they must: same job, same data, same seeds). Needs Gramine's tools on
PATH.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

from enclavefl.core.jobfile import load_job
from enclavefl.demos.gramine_direct import ProcessUsage, run_direct_federation, run_native_federation
from enclavefl.demos.process_federation import FederationFiles, OwnerFiles, write_federation_files
from enclavefl.demos.seed import initial_model, seed_job

TASK = f"{Path(__file__).resolve().parents[1] / 'tests' / 'integration' / 'tiny_task.py'}:TASK"
MIB = 1 << 20


def prepare(directory: Path, *, owners: int, rounds: int) -> FederationFiles:
    """Keys, data (a fixed, non-secret test RNG), the job and the simulated platform for a tiny federation."""
    rng = np.random.default_rng(7)
    datasets = {
        f"owner-{i:02d}": {"x": rng.random((4, 2), dtype=np.float32), "y": rng.random((4, 1), dtype=np.float32)}
        for i in range(owners)
    }
    initial = initial_model(0)
    job = dataclasses.replace(seed_job(initial, rounds=rounds), name="tiny", data_owners=(), min_contributions=owners)
    return write_federation_files(directory, job=job, initial=initial, datasets=datasets)


def federation_files(directory: Path) -> FederationFiles:
    """The FederationFiles `prepare` wrote in `directory` (owners named by the job)."""
    job = load_job(directory / "job.toml")
    owners = {
        o.name: OwnerFiles(
            key=directory / f"{o.name}.key", cert=directory / f"{o.name}.pem", data=directory / f"{o.name}.safetensors"
        )
        for o in job.data_owners
    }
    return FederationFiles(
        directory=directory,
        job=directory / "job.toml",
        policy=directory / "policy.toml",
        platform_dir=directory / "platform",
        initial_model=directory / "init.safetensors",
        model_owner_key=directory / "model-owner.key",
        model_owner_cert=directory / "model-owner.pem",
        owners=owners,
    )


def _fresh_state(files: FederationFiles, release: Path) -> None:
    # every run starts the job from round 1: no checkpoint of the previous run may be resumed
    for state in [*files.directory.glob("node-state-*"), release / "state"]:
        for path in sorted(state.rglob("*"), reverse=True) if state.is_dir() else []:
            path.rmdir() if path.is_dir() else path.unlink()


def _summary(name: str, usages: list[ProcessUsage]) -> dict[str, float]:
    rounds = len(usages[0].round_times)
    medians = [statistics.median(u.round_times[r] for u in usages) for r in range(rounds)]
    row = {
        "total_s": statistics.median(sum(u.round_times) for u in usages),
        "startup_s": statistics.median(u.startup_seconds for u in usages),
        "threads": max(u.max_threads for u in usages),
        "vmhwm_mib": statistics.median(u.peak_rss_bytes for u in usages) / MIB,
        "vmpeak_mib": statistics.median(u.peak_virtual_bytes for u in usages) / MIB,
    }
    rounds_text = " ".join(f"{m:.2f}" for m in medians)
    print(
        f"{name:8} node start-up {row['startup_s']:.2f} s | rounds (median s) {rounds_text} | total"
        f" {row['total_s']:.2f} s | threads {row['threads']:.0f}"
        f" | VmHWM {row['vmhwm_mib']:.0f} MiB | VmPeak {row['vmpeak_mib']:.0f} MiB"
    )
    return row


def run(release: Path, federation: Path, *, runs: int) -> int:
    files = federation_files(federation)
    usages: dict[str, list[ProcessUsage]] = {"native": [], "direct": []}
    digests: set[str] = set()
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min load average, {os.cpu_count()} cores)")
    for i in range(runs):
        for way in ("native", "direct"):
            _fresh_state(files, release)
            if way == "native":
                result, usage = run_native_federation(files, task=TASK)
            else:
                result, usage = run_direct_federation(files, release_dir=release, task=TASK)
            usages[way].append(usage)
            digests.add(hashlib.sha256((federation / "final.safetensors").read_bytes()).hexdigest())
            print(f"run {i + 1} {way}: {len(result.summaries)} rounds, {sum(usage.round_times):.2f} s", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    native, direct = _summary("native", usages["native"]), _summary("direct", usages["direct"])
    print(
        f"direct / native (medians): node start-up {direct['startup_s'] / native['startup_s']:.2f}x,"
        f" total {direct['total_s'] / native['total_s']:.2f}x"
    )
    print(f"final model: {'the same both ways' if len(digests) == 1 else 'DIFFERENT'} ({sorted(digests)[0][:16]})")
    return 0 if len(digests) == 1 else 1


def smoke() -> int:
    """The suite's run (--smoke): a one-round federation, natively only (gramine-direct needs a release that Gramine
    built); it exercises the same harness and prints the same row."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        files = prepare(Path(tmp) / "federation", owners=2, rounds=1)
        result, usage = run_native_federation(files, task=TASK)
        print(f"run 1 native: {len(result.summaries)} rounds, {sum(usage.round_times):.2f} s", flush=True)
        _summary("native", [usage])
    print("smoke run: native only (gramine-direct needs a release built with Gramine: see --help)")
    return 0


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--smoke"]:
        warnings.simplefilter("ignore")
        return smoke()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write a tiny federation (then build a release for its job.toml)")
    prep.add_argument("federation", type=Path)
    prep.add_argument("--owners", type=int, default=2)
    prep.add_argument("--rounds", type=int, default=3)
    go = sub.add_parser("run", help="run the federation natively and under gramine-direct, interleaved")
    go.add_argument("--release", type=Path, required=True, help="a release built for FEDERATION/job.toml")
    go.add_argument("--federation", type=Path, required=True)
    go.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the simulated TEE's warning, once per process
    if args.command == "prepare":
        files = prepare(args.federation, owners=args.owners, rounds=args.rounds)
        print(f"wrote {files.job}: next, enclavefl enclave init R --job {files.job}, then build-release.sh R")
        return 0
    return run(args.release.resolve(), args.federation.resolve(), runs=args.runs)


if __name__ == "__main__":
    sys.exit(main())

"""Every script in benchmarks/ runs here in its smoke mode (`--smoke`: tiny sizes, the same code path end to end,
the same table printed), so moving or renaming what a benchmark imports breaks a test, not a doc that quotes it.
The figures of a smoke run mean nothing; this only checks that the script runs and prints its table.

Each smoke run is a fresh interpreter (the multi-process ones start a node and owners as real processes, some
import torch): a few seconds to tens of seconds on a loaded machine. They are marked `slow`, which
`make test-fast` skips and `make test` (CI) runs; the check that every script has a smoke run stays in both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
LLM = all(importlib.util.find_spec(m) is not None for m in ("peft", "transformers"))
RAY = importlib.util.find_spec("ray") is not None

# script -> a line of the table its smoke run must print
TABLE_LINE = {
    "bench_abuse.py": "round time, median",
    "bench_attestation.py": "ratio (simulated generate + verify) / (real verify)",
    "bench_cli_startup.py": "slowest command of this tree",
    "bench_federation.py": "node growth",
    "bench_fedprox_solver.py": '"torchtask_over_numpy"',
    "bench_first_round.py": "warm-up before joining (after)",
    "bench_fold.py": "(Flower-style contrast)",
    "bench_gramine_direct.py": "smoke run: native only",
    "bench_ingest.py": "ratio peak growth / model size",  # after its throughput tables
    # without peft and transformers (the llm extra) it says what it skipped; with them, its table
    "bench_lora.py": "lora / full" if LLM else "smoke run skipped: needs peft, transformers",
    "bench_many_rounds.py": "ratio old / new job (interleaved)",
    "bench_many_owners.py": "| owners | round time (s) | node CPU per owner per round (ms) |",
    "bench_round_protocol.py": "ratio two-phase / one-phase",
    "bench_secagg.py": '"owner_throughput_ratio"',
    "bench_seed_job.py": "idle RSS (MiB)",
    # enclavefl's side only (no Flower); without ray (the ray extra) it says what it skipped
    "bench_simulation.py": "| enclavefl |" if RAY else "smoke run skipped: needs ray",
}


# the helpers in benchmarks/'s subdirectories -> what runs them in the suite
HELPERS = {
    "ingest/ingest_setup.py": "bench_ingest.py's smoke run (imported at its top)",
    "ingest/ingest_paths.py": "bench_ingest.py's smoke run (imported at its top)",
    "ingest/ingest_senders.py": "bench_ingest.py's smoke run (imported at its top)",
    "ingest/ingest_raw.py": "bench_ingest.py's smoke run (imported at its top)",
    "ingest/ingest_report.py": "bench_ingest.py's smoke run (imported at its top)",
    "simulation/workload.py": "bench_simulation.py's smoke run (imported at its top)",
    "simulation/flower_side.py": "test_flower_side_runs_a_tiny_simulation (needs flwr[simulation] and ray)",
    "many_owners/node_probe.py": "bench_many_owners.py's smoke run (its node process installs the probe)",
}


def test_every_benchmark_has_a_smoke_run() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(TABLE_LINE)
    helpers = {p.relative_to(BENCHMARKS).as_posix() for p in BENCHMARKS.glob("*/**/*.py")}
    assert sorted(helpers) == sorted(HELPERS)


SLOW_MARKS = [pytest.mark.slow, pytest.mark.timeout(600)]  # a loaded machine slows processes that start torch


@pytest.mark.parametrize("script", [pytest.param(name, marks=SLOW_MARKS) for name in sorted(TABLE_LINE)])
def test_the_benchmark_runs_end_to_end_in_smoke_mode(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=540,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert TABLE_LINE[script] in done.stdout, done.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_flower_side_runs_a_tiny_simulation(tmp_path: Path) -> None:
    """bench_simulation.py runs Flower's side only in its full mode, in a virtualenv of its own: this runs that
    script at the smallest size wherever flwr's simulation (Ray) is importable, so a change to the shared workload
    that breaks it shows here."""
    for module in ("flwr.simulation", "ray"):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            pytest.skip(f"needs flwr[simulation] and ray ({module} is not installed): bench_simulation.py's own venv")
    out = tmp_path / "flower.json"
    script = BENCHMARKS / "simulation" / "flower_side.py"
    args = ["--owners", "2", "--per-round", "2", "--rounds", "1", "--cpus", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path, timeout=540
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result) == {"round_seconds", "wall_seconds", "final_loss", "driver_mib", "workers_mib"}
    assert result["final_loss"] is not None and result["final_loss"] > 0

"""The seed scenario as separate OS processes: a simulated-enclave node, Bob, Alice, and this process as model owner.

Same job, data, seeds and task as `demos.seed.run_seed` (in process), but every party is its own process and
talks gRPC over TLS on loopback, with attestation, signed joins and receipts. The final weights equal the
in-process run's (same seeds, same arithmetic): `tests/integration/test_seed_processes.py` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enclavefl.core.messages import RoundSummary
from enclavefl.demos.process_federation import (
    FederationFiles,
    FederationRun,
    LineSink,
    run_federation,
    write_federation_files,
)
from enclavefl.demos.seed import SEED_ROUNDS, SeedEvaluation, evaluate, initial_model, seed_job, seed_split

SEED_TASK_SPEC = "enclavefl.demos.seed:SEED_TASK"


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedProcessesResult:
    run: FederationRun
    evaluation: SeedEvaluation
    files: FederationFiles


def write_seed_files(
    workdir: Path, *, seed: int = 0, rounds: int = SEED_ROUNDS, platform_dir: Path | None = None, masked: bool = False
) -> FederationFiles:
    """Bob's and Alice's data, keys and certificates, the enrolled seed job, the initial model, the policy."""
    initial = initial_model(seed)
    datasets = {name: {"x": d.x.numpy(), "y": d.y.numpy()} for name, d in seed_split().items()}
    job = seed_job(initial, rounds=rounds, masked=masked)
    return write_federation_files(workdir, job=job, initial=initial, datasets=datasets, platform_dir=platform_dir)


def run_seed_processes(
    *,
    workdir: Path,
    seed: int = 0,
    rounds: int = SEED_ROUNDS,
    platform_dir: Path | None = None,
    on_round: Callable[[RoundSummary], None] | None = None,
    on_line: LineSink | None = None,
    timeout: float = 180.0,
    masked: bool = False,
) -> SeedProcessesResult:
    """Run the seed federation as processes in `workdir` (new or empty); raise ChildProcessFailed if a party fails.

    The node is `enclavefl node serve --tee insecure-simulation`, Bob and Alice are `enclavefl data-owner run`.
    """
    files = write_seed_files(workdir, seed=seed, rounds=rounds, platform_dir=platform_dir, masked=masked)
    run = run_federation(
        files,
        task=SEED_TASK_SPEC,
        owner_state=workdir / "owner-state",  # throwaway demo keys: their state stays with the demo's files
        on_line=on_line,
        timeout=timeout,
        on_round=(lambda summary, _group: on_round(summary)) if on_round is not None else None,
    )
    return SeedProcessesResult(run=run, evaluation=evaluate(run.final.weights), files=files)

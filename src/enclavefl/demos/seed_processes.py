"""The seed scenario as separate OS processes: a simulated-enclave node, Bob, Alice, and this process as model owner.

Same job, data, seeds and task as `demos.seed.run_seed` (in process), but every party is its own process and
talks gRPC over TLS on loopback, with attestation, signed joins and receipts. The final weights equal the
in-process run's (same seeds, same arithmetic): `tests/integration/test_seed_processes.py` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enclavefl.core.jobfile import read_initial_model
from enclavefl.core.messages import RoundSummary
from enclavefl.demos.process_federation import (
    ChildProcessFailed,
    FederationFiles,
    LineSink,
    ProcessGroup,
    Watchdog,
    data_owner_command,
    model_owner_session,
    node_command,
    wait_for_address,
    write_federation_files,
)
from enclavefl.demos.seed import SEED_ROUNDS, SeedEvaluation, evaluate, initial_model, seed_job, seed_split
from enclavefl.errors import EnclaveFLError
from enclavefl.roles.model_owner_files import download_final_model
from enclavefl.roles.remote import FinalModel

SEED_TASK_SPEC = "enclavefl.demos.seed:SEED_TASK"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessRunResult:
    final: FinalModel
    summaries: tuple[RoundSummary, ...]
    evaluation: SeedEvaluation
    exit_codes: dict[str, int]
    address: str
    files: FederationFiles
    output: dict[str, list[str]]  # every child's lines


def write_seed_files(
    workdir: Path, *, seed: int = 0, rounds: int = SEED_ROUNDS, platform_dir: Path | None = None
) -> FederationFiles:
    """Bob's and Alice's data, keys and certificates, the enrolled seed job, the initial model, the policy."""
    initial = initial_model(seed)
    datasets = {name: {"x": d.x.numpy(), "y": d.y.numpy()} for name, d in seed_split().items()}
    return write_federation_files(
        workdir, job=seed_job(initial, rounds=rounds), initial=initial, datasets=datasets, platform_dir=platform_dir
    )


def run_seed_processes(
    *,
    workdir: Path,
    seed: int = 0,
    rounds: int = SEED_ROUNDS,
    platform_dir: Path | None = None,
    on_round: Callable[[RoundSummary], None] | None = None,
    on_line: LineSink | None = None,
    timeout: float = 180.0,
) -> ProcessRunResult:
    """Run the seed federation as processes in `workdir` (must be new or empty); raise if any party fails."""
    files = write_seed_files(workdir, seed=seed, rounds=rounds, platform_dir=platform_dir)
    summaries: list[RoundSummary] = []
    with ProcessGroup(on_line=on_line) as group:
        node = group.start("node", node_command(files, port_file=workdir / "node.addr"))
        address = wait_for_address(workdir / "node.addr", node)
        owners = [group.start(n, data_owner_command(files, n, address, task=SEED_TASK_SPEC)) for n in files.owners]
        session = model_owner_session(files, address)
        try:
            with Watchdog(group, timeout=timeout, abort=session.close) as watchdog:
                try:
                    session.submit_initial_model(read_initial_model(files.initial_model))
                    for summary in session.watch():
                        summaries.append(summary)
                        if on_round is not None:
                            on_round(summary)
                    final = download_final_model(
                        session, out=workdir / "final.safetensors", receipts_out=workdir / "receipts.json"
                    )
                except EnclaveFLError as exc:
                    if watchdog.reason:
                        raise ChildProcessFailed(watchdog.reason) from exc
                    raise
        finally:
            session.close()
        codes = {child.name: child.wait(60.0) for child in [*owners, node]}
    if any(codes.values()):
        raise ChildProcessFailed(f"a party exited badly: {codes}")
    return ProcessRunResult(
        final=final, summaries=tuple(summaries), evaluation=evaluate(final.weights), exit_codes=codes,
        address=address, files=files, output={c.name: c.lines for c in group.children.values()},
    )  # fmt: skip

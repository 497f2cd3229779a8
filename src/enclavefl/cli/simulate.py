"""`enclavefl simulate`: many virtual data owners from your task and a data function, in process or on Ray.

    enclavefl simulate --task task.py:TASK --data task.py:owner_data --owners 1000 --clients-per-round 20 \\
        --rounds 50 --backend ray --out final.safetensors

`--data` names a function taking an owner's index (0..N-1) and returning that owner's data as the task takes it;
with `--backend ray` it runs in the Ray worker that trains the owner, so each share is built or read there.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import ConfigError, EnclaveFLError

if TYPE_CHECKING:
    from enclavefl.core.messages import RoundSummary
    from enclavefl.sim.virtual_owners import RoundProgress

console = Console(soft_wrap=True)


def simulate(
    task: Annotated[str, typer.Option(help="Your task: MODULE:ATTR or path/to/file.py:ATTR (as `data-owner run`).")],
    data: Annotated[
        str,
        typer.Option(
            help="A function of the owner's index (0..N-1) returning that owner's data, MODULE:FUNC or file.py:FUNC; "
            "with --backend ray it runs where the owner trains."
        ),
    ],
    owners: Annotated[int, typer.Option(min=1, help="Virtual data owners, all enrolled in the job.")] = 10,
    clients_per_round: Annotated[
        str | None,
        typer.Option(
            help="Owners the enclave draws per round: a count (20) or a fraction (0.02, 2%). Default: all, every round."
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 10,
    local_steps: Annotated[int, typer.Option(min=1, help="Local SGD steps per owner per round.")] = 5,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Examples per local step (default: all).")] = None,
    lr: Annotated[float, typer.Option(min=0.0, help="Local learning rate.")] = 0.1,
    seed: Annotated[int, typer.Option(help="torch seed of the initial model.")] = 0,
    backend: Annotated[
        str,
        typer.Option(
            help="inprocess: one thread per owner in this process. ray: each owner's round is a Ray task "
            "(pip install 'enclavefl[ray]'); the node stays here and takes the updates as they come back."
        ),
    ] = "inprocess",
    ray_address: Annotated[
        str | None,
        typer.Option(help="--backend ray: a running cluster ('auto', 'ray://HOST:10001'); default: start a local Ray."),
    ] = None,
    cpus_per_owner: Annotated[float, typer.Option(min=0.01, help="--backend ray: CPUs each owner's task takes.")] = 1.0,
    gpus_per_owner: Annotated[float, typer.Option(min=0.0, help="--backend ray: GPUs each owner's task takes.")] = 0.0,
    out: Annotated[Path | None, typer.Option(help="Write the final model here (safetensors).")] = None,
) -> None:
    """Simulate a federation of --owners virtual data owners with the INSECURE simulated enclave.

    The node is the deployment's (round loop, cohorts drawn inside the enclave, K, two-phase receipts); each
    owner trains your task on the data your --data function returns for its index. One line per round: owners
    trained, seconds, the aggregated train loss. Example (1,000 owners, 20 per round, on a local Ray):

        enclavefl simulate --task task.py:TASK --data task.py:owner_data --owners 1000 --clients-per-round 20
        --rounds 50 --backend ray
    """
    from enclavefl.api.jobs import cohort_form
    from enclavefl.api.simulation import simulate as run
    from enclavefl.core.codec import encode_weights
    from enclavefl.core.job import TrainConfig
    from enclavefl.owner.preflight import load_task
    from enclavefl.sim.virtual_training import OwnerPartition

    try:
        count, fraction = cohort_form(clients_per_round)
        loaded_task = load_task(_importable(task))
        data_fn = _function(data)
        partition = OwnerPartition(count=owners, data=data_fn)
    except EnclaveFLError as exc:
        console.print(f"[red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(ExitCode.CONFIG) from None
    per_round = count if count is not None else fraction
    console.print(
        f"[bold red]INSECURE SIMULATION[/]: {owners} virtual owners"
        + (f", {clients_per_round} per round" if clients_per_round else ", all every round")
        + f", {rounds} rounds, backend {backend}"
    )
    started = time.monotonic()

    def progress(p: RoundProgress) -> None:
        console.print(
            f"round {p.round}/{rounds}: {p.trained} owner(s) trained and uploaded in {p.seconds:.2f} s"
            + (f" ({p.refused} refused)" if p.refused else "")
        )

    def released(summary: RoundSummary) -> None:
        loss = summary.metrics.get("train_loss")
        shown = "-" if loss is None else f"{loss:.4f}"
        console.print(
            f"round {summary.round}/{rounds} released: {summary.contributions} contribution(s), train loss {shown}"
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the INSECURE banner above says it once
            history = run(
                loaded_task,
                partition,
                rounds=rounds,
                train=TrainConfig(local_steps=local_steps, batch_size=batch_size, lr=lr),
                clients_per_round=per_round,
                seed=seed,
                backend=backend,
                ray_address=ray_address,
                num_cpus_per_owner=cpus_per_owner,
                num_gpus_per_owner=gpus_per_owner,
                on_round=released,
                on_progress=progress if backend == "ray" else None,
            )
    except ConfigError as exc:
        console.print(f"[red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(ExitCode.CONFIG) from None
    except ModuleNotFoundError as exc:  # e.g. --backend ray without the extra: one line naming it
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(ExitCode.CONFIG) from None
    except EnclaveFLError as exc:
        console.print(f"[red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(ExitCode.FAILED) from None
    console.print(
        f"done in {time.monotonic() - started:.1f} s: final model {history.final_model.sha256().hex()} "
        f"(the last verified receipt signs it)"
    )
    if out is not None:
        out.write_bytes(encode_weights(history.final_model))
        console.print(f"wrote {out}")


def _importable(spec: str) -> str:
    """`file.py:ATTR` as `module:ATTR` with the file's directory on the path (also of Ray's local workers, which
    inherit this environment): Ray's workers then import the module by name, as this process does."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module.endswith(".py"):
        return spec
    path = Path(module)
    if not path.is_file():
        raise ConfigError(f"{spec!r}: {path} does not exist")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH", "")) if p)
    return f"{path.stem}:{attr}"


def _function(spec: str) -> Any:
    module_name, sep, attr = _importable(spec).rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--data {spec!r}: expected MODULE:FUNC or path/to/file.py:FUNC")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # user code: one line
        raise ConfigError(f"--data {spec!r}: cannot import {module_name}: {type(exc).__name__}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"--data {spec!r}: {module_name} has no function {attr!r}")
    return function

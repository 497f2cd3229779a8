"""`enclavefl task init-model`: the initial model a job starts from, written from the task the owners will run.

enclavefl task init-model task.py:TASK --out init.safetensors --seed 0
enclavefl job init --model init.safetensors ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import EnclaveFLError

app = typer.Typer(help="Your task: write the initial model it builds.", no_args_is_help=True)


@app.callback()
def _task() -> None:
    """Your task (the code every data owner runs): write the initial model it builds."""


@app.command("init-model", epilog=exit_status_help())
def init_model(
    task: Annotated[str, typer.Argument(help="The task: package.module:ATTR or path/to/file.py:ATTR.")],
    out: Annotated[Path, typer.Option("--out", help="The safetensors file to write.")] = Path("init.safetensors"),
    seed: Annotated[int, typer.Option(help="torch.manual_seed before create_model(): the same seed, same model.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Build the task's model (create_model() under --seed) and write its weights as safetensors.

    The file is what `job init --model` commits the job to (its weights digest is printed) and what the model owner
    submits. Only the model's tensors are written (no pickle, no code).
    """
    import torch

    from enclavefl.core.codec import encode_weights
    from enclavefl.core.torch_adapter import weights_from_module
    from enclavefl.owner.preflight import load_task

    if out.exists() and not force:
        _error(f"ConfigError: --out {out} exists; nothing was written (--force replaces it)")
    if not out.absolute().parent.is_dir():
        _error(f"ConfigError: --out {out}: its directory does not exist")
    try:
        loaded = load_task(task)
        torch.manual_seed(seed)
        weights = weights_from_module(loaded.create_model())
    except EnclaveFLError as exc:
        _error(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # the user's create_model()
        _error(f"TaskError: --task {task!r}: create_model() raised {type(exc).__name__}: {exc}")
    out.write_bytes(encode_weights(weights))
    parameters = sum(int(spec.numel) for spec in weights.schema.tensors)
    typer.echo(
        f"wrote {out}: {len(weights.schema.tensors)} tensors, {parameters} parameters, "
        f"weights digest {weights.sha256().hex()}"
    )


def _error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.CONFIG)

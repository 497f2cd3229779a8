"""A data owner's pre-flight: load the task, build its model, check it against the job and the data, offline.

    task = load_task("task.py:TASK")                       # TaskError: one line, never a traceback
    check_task_fits(task, job=job, data=data)              # ModelSchemaMismatch / DataMismatch name the tensors,
                                                           # BaseModelMismatch: not the job's frozen base model

Everything here runs before the node is contacted, so a wrong file is reported in a second rather than at round
one, after attesting and joining. The user's task code may raise anything: each failure becomes one line that
names the file, the exception and, for schema and data mistakes, the tensors with their shapes.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import os
import traceback
import warnings
from pathlib import Path
from typing import Any

from enclavefl.core.job import JobSpec
from enclavefl.core.weights import ModelSchema, TensorSpec
from enclavefl.errors import ConfigError, DataMismatch, EnclaveFLError, ModelSchemaMismatch, TaskError
from enclavefl.task import StreamedData, Task, TensorData


def load_owner_data(task: Task, path: str | os.PathLike[str]) -> Any:
    """The owner's data at `path`: read by the task's own `load_data` when it has one, else a safetensors file with
    tensors `x` and `y`. Runs on the owner's side only; the path never leaves it."""
    loader = getattr(task, "load_data", None)
    if not callable(loader):
        from enclavefl.owner.data_owner import load_tensor_data  # torch (safetensors.torch): only to read it

        return load_tensor_data(path)
    try:
        return loader(Path(path))
    except EnclaveFLError:
        raise
    except Exception as exc:  # user code: one line naming the path
        raise DataMismatch(f"--data {path}: the task's load_data raised {_one_line(exc)}") from None


def first_example(data: Any) -> TensorData | None:
    """One example of the owner's data, or None for data only the task itself reads (a Flower client's)."""
    if isinstance(data, TensorData):
        return TensorData(x=data.x[:1], y=data.y[:1])
    if isinstance(data, StreamedData):
        try:
            return data.first_example()
        except Exception as exc:
            raise DataMismatch(f"the streamed dataset yields no example (x, y): {_one_line(exc)}") from None
    return None


def load_task(spec: str) -> Task:
    """`module:ATTR` or `file.py:ATTR` -> the Task it names (a zero-argument callable is called)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--task {spec!r}: expected MODULE:ATTR or path/to/file.py:ATTR")
    module = _import(spec, module_name)
    value = getattr(module, attr, None)
    if value is None:
        raise TaskError(f"--task {spec!r}: {module_name} has no attribute {attr!r}")
    try:
        task = value if hasattr(value, "train") else value() if callable(value) else None
    except Exception as exc:  # user code: any failure is a one-line configuration error
        raise TaskError(f"--task {spec!r}: calling {attr}() raised {_one_line(exc)}") from None
    if task is None or not all(hasattr(task, m) for m in ("create_model", "train", "evaluate")):
        raise TaskError(f"--task {spec!r}: {attr} is not a Task (it needs create_model, train, evaluate)")
    return task  # type: ignore[no-any-return]


def _import(spec: str, module_name: str) -> Any:
    if not module_name.endswith(".py"):
        try:
            return importlib.import_module(module_name)
        except Exception as exc:  # ImportError, or anything the module raises while it runs
            raise TaskError(f"--task {spec!r}: cannot import {module_name}: {_one_line(exc)}") from None
    path = Path(module_name)
    if not path.is_file():
        raise TaskError(f"--task {spec!r}: {path} does not exist (the task file sits beside your data, say)")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    if module_spec is None or module_spec.loader is None:
        raise TaskError(f"--task {spec!r}: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise TaskError(f"--task {spec!r}: {path} line {exc.lineno}: SyntaxError: {exc.msg}") from None
    except Exception as exc:
        raise TaskError(f"--task {spec!r}: running {path} raised {_one_line(exc)}") from None
    return module


def check_task_fits(task: Task, *, job: JobSpec, data: Any, data_path: Path | str = "--data") -> None:
    """Build the task's model, compare its frozen base model (by digest) and its schema with the job's, and run one
    example of `data` through it. The one place an owner checks its base model: before it trains or sends."""
    from enclavefl.core.torch_adapter import weights_from_module  # torch: here, so load_task imports without it
    from enclavefl.task.subset import check_base_model

    try:
        model = task.create_model()
    except EnclaveFLError:
        raise
    except Exception as exc:
        raise TaskError(f"the task's create_model() raised {_one_line(exc)}") from None
    check_base_model(model, job.base_model)
    if job.model_schema is not None:
        try:
            schema = weights_from_module(model).schema
        except Exception as exc:
            raise TaskError(f"the task's model has no usable state_dict: {_one_line(exc)}") from None
        differences = schema_differences(task=schema, job=job.model_schema)
        if differences:
            raise ModelSchemaMismatch(f"the task's model is not the job's model: {'; '.join(differences)}")
    if isinstance(data, TensorData):
        check_data_values(data, data_path)
    one = first_example(data)
    if one is None:
        return
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            task.evaluate(model, one)
        except Exception as exc:
            raise DataMismatch(
                f"{data_path} does not fit the task's model: one example, x {_described(one.x)} and "
                f"y {_described(one.y)}, raised {_one_line(exc)}{_where(exc)}"
            ) from None
    if isinstance(data, TensorData) and data.y.dim() == 1:
        check_loss_is_per_example(task, model, data, data_path)
    for warning in said:  # torch's losses broadcast a (n,) target against (n, 1) outputs: a silently wrong loss
        if "target size" in str(warning.message) and "broadcast" in str(warning.message):
            raise DataMismatch(
                f"{data_path}: y {_described(one.y)} does not have the model output's shape, and the loss would "
                f"broadcast it ({' '.join(str(warning.message).split())[:200]}); reshape y, e.g. y.reshape(-1, 1)"
            )


def check_loss_is_per_example(task: Task, model: Any, data: TensorData, data_path: Path | str = "--data") -> None:
    """A 1-D y against (n, 1) outputs broadcasts to an (n, n) loss that trains on every pair: a loss of two
    examples that is neither the sum nor the mean of their own losses says so. Class labels (cross-entropy)
    pass: their loss is per example."""
    others = (data.y != data.y[0]).nonzero().flatten()
    if others.numel() == 0:  # every target equal: a broadcast loss would be the mean of the per-example ones
        return
    pick = [0, int(others[0])]
    try:
        each = [task.evaluate(model, TensorData(x=data.x[i : i + 1], y=data.y[i : i + 1])).loss for i in pick]
        both = task.evaluate(model, TensorData(x=data.x[pick], y=data.y[pick])).loss
    except Exception:  # the one-example check below names what fails
        return
    total = each[0] + each[1]
    if not any(math.isclose(both, expected, rel_tol=1e-3, abs_tol=1e-6) for expected in (total, total / 2)):
        raise DataMismatch(
            f"{data_path}: y {_described(data.y)} is 1-D and the loss of two examples ({both:.6g}) is neither the "
            f"sum nor the mean of their own ({each[0]:.6g}, {each[1]:.6g}): the loss broadcasts y against the "
            "model's (n, 1) output; reshape y to (n, 1), e.g. y.reshape(-1, 1)"
        )


def check_data_values(data: TensorData, data_path: Path | str = "--data") -> None:
    """No examples, or a NaN or infinite value, fail here, offline, with where they are: not in every round."""
    if len(data) == 0:
        raise DataMismatch(f"{data_path} holds 0 examples (x {_described(data.x)}): nothing to train on")
    for name, tensor in (("x", data.x), ("y", data.y)):
        if not tensor.is_floating_point():
            continue
        bad = ~tensor.isfinite()
        if bool(bad.any()):
            rows = bad.reshape(bad.shape[0], -1).any(dim=1).nonzero().flatten()
            nan = int(tensor.isnan().sum())
            raise DataMismatch(
                f"{data_path}: {name} holds {int(bad.sum())} non-finite value(s) ({nan} NaN, {int(bad.sum()) - nan} "
                f"inf) in {rows.numel()} example(s), the first at row {int(rows[0])}; every round would fail"
            )


def schema_differences(*, task: ModelSchema, job: ModelSchema) -> list[str]:
    """One phrase per tensor that differs: missing, unexpected, or another shape or dtype."""
    theirs = {t.name: t for t in job.tensors}
    ours = {t.name: t for t in task.tensors}
    found = [f"{n} {_spec(theirs[n])} is missing from the task's model" for n in sorted(theirs.keys() - ours.keys())]
    found += [f"{n} {_spec(ours[n])} is not in the job" for n in sorted(ours.keys() - theirs.keys())]
    for name in sorted(ours.keys() & theirs.keys()):
        if ours[name] != theirs[name]:
            found.append(f"{name} is {_spec(ours[name])} in the task, {_spec(theirs[name])} in the job")
    return found


def _spec(spec: TensorSpec) -> str:
    return f"{tuple(spec.shape)} {spec.dtype}"


def _described(tensor: Any) -> str:
    return f"{tuple(int(d) for d in tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def _where(exc: BaseException) -> str:
    """` (at file.py line N)`: the innermost frame of the user's own code, outside the installed libraries."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" not in f.filename]
    own = [f for f in frames if "/enclavefl/" not in f.filename.replace("\\", "/")]
    return f" (at {Path(own[-1].filename).name} line {own[-1].lineno})" if own else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:300]}"


def on_device(task: Task, device: str | None) -> Task:
    """`task` training on `device` (`data-owner run --device`); ConfigError for a device torch cannot use or a task
    that is not a TorchTask (its own code decides where it runs)."""
    if device is None:
        return task
    from enclavefl.task.api import TorchTask, resolve_device

    if not isinstance(task, TorchTask):
        raise ConfigError(
            f"--device {device}: only a TorchTask trains where --device says; this task is a {type(task).__name__}, "
            "whose own code chooses its device"
        )
    return dataclasses.replace(task, device=resolve_device(device))

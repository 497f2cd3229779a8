"""Issue 22 item 7: `--task` paths. The task is the data owner's own code and runs with its rights (it trains on
its data); what must hold is that naming a task can do nothing else: a task file cannot replace a module the owner
trusts (the decoder of received weights, the package itself), its directory's other files are not imported, a spec
that is not a file or a module is refused with one line, and nothing the node or the job says picks the task.

Found on main: all of these hold (the file form runs the file under its stem without registering it in
sys.modules and adds nothing to sys.path); this test keeps them so.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

import enclavefl
from enclavefl.core.job import JobSpec
from enclavefl.errors import ConfigError, TaskError
from enclavefl.owner.preflight import load_task

TASK = """
from enclavefl.demos.seed import SEED_TASK as task
"""
SHADOW = 'raise SystemExit("a file beside the task shadowed a trusted module")\n'


def test_a_task_file_named_after_a_trusted_module_does_not_replace_it(tmp_path: Path) -> None:
    for trusted in ("enclavefl", "safetensors", "cryptography"):
        (tmp_path / f"{trusted}.py").write_text(TASK)
    before = {name: sys.modules.get(name) for name in ("enclavefl", "safetensors", "cryptography")}
    path_before = list(sys.path)

    tasks = [load_task(f"{tmp_path / name}.py:task") for name in before]

    assert all(hasattr(t, "train") for t in tasks)
    assert {name: sys.modules.get(name) for name in before} == before  # still the installed modules
    assert sys.modules["enclavefl"] is enclavefl
    assert sys.path == path_before


def test_files_beside_the_task_are_not_imported_in_its_place(tmp_path: Path) -> None:
    (tmp_path / "task.py").write_text(TASK)
    for shadow in ("enclavefl_shadow_probe", "safetensors", "numpy", "torch"):
        (tmp_path / f"{shadow}.py").write_text(SHADOW)
    (tmp_path / "probe.py").write_text("import enclavefl_shadow_probe\ntask = None\n")

    task = load_task(f"{tmp_path / 'task.py'}:task")
    with pytest.raises(TaskError, match=r"running .*probe.py raised .*No module named"):
        load_task(f"{tmp_path / 'probe.py'}:task")  # the task's directory is not on the import path

    from enclavefl.core.codec import decode_weights, encode_weights
    from enclavefl.core.weights import ModelWeights

    weights = ModelWeights({"w": __import__("numpy").zeros((2,), "float32")})
    assert decode_weights(encode_weights(weights)).sha256() == weights.sha256()  # the real safetensors decodes
    assert hasattr(task, "train")


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("../../../../etc/passwd", ConfigError, "expected MODULE:ATTR"),
        ("../../../../etc/passwd:x", TaskError, "cannot import"),
        ("../../../../etc/hostname.py:x", TaskError, "does not exist"),
        ("os:getcwd", TaskError, "is not a Task"),
        ("enclavefl.owner.ledger:PrivacyLedger", TaskError, r"is not a Task|calling PrivacyLedger\(\)"),
    ],
)
def test_a_spec_that_names_no_task_is_refused_in_one_line(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as refused:
        load_task(spec)

    assert "\n" not in str(refused.value)


def test_nothing_in_the_job_names_a_task() -> None:
    """The node and the model owner cannot choose the code a data owner runs: no job field names a task or a path."""
    names = {f.name for f in dataclasses.fields(JobSpec)}

    assert not {n for n in names if "task" in n or "path" in n or "module" in n}

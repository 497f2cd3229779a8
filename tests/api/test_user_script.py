"""The public surface: a user's script type-checks under mypy --strict with public names only, and runs;
`help(enclavefl)` shows the API."""

from __future__ import annotations

import ast
import os
import pydoc
import subprocess
import sys
from pathlib import Path

import enclavefl

SCRIPT = Path(__file__).with_name("user_script.py")
SRC = Path(enclavefl.__file__).resolve().parents[1]


def test_the_user_script_passes_mypy_strict() -> None:
    env = {**os.environ, "MYPYPATH": str(SRC)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--config-file",
            os.devnull,
            "--cache-dir",
            os.devnull,
            str(SCRIPT),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_wrong_use_of_the_api(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import enclavefl\n\nhistory: enclavefl.SimulationHistory = enclavefl.simulate(1, {})\n")
    env = {**os.environ, "MYPYPATH": str(SRC)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--config-file",
            os.devnull,
            "--cache-dir",
            os.devnull,
            str(wrong),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1 and "arg-type" in result.stdout, result.stdout


def test_the_user_script_uses_public_names_only() -> None:
    tree = ast.parse(SCRIPT.read_text())
    private = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("enclavefl"):
            if node.module != "enclavefl":
                private.append(node.module)
            private += [a.name for a in node.names if a.name not in enclavefl.__all__]
        elif isinstance(node, ast.Import):
            private += [a.name for a in node.names if a.name.startswith("enclavefl.")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "enclavefl"
            and node.attr not in enclavefl.__all__
        ):
            private.append(f"enclavefl.{node.attr}")
    assert private == []


def test_the_user_script_runs_a_simulated_federation() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, check=False, timeout=240
    )
    assert result.returncode == 0, result.stderr
    losses = [float(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("train_loss")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert "receipts 3 final " in result.stdout


def test_help_shows_every_public_name() -> None:
    text = pydoc.render_doc(enclavefl, renderer=pydoc.plaintext)
    documented = enclavefl.__doc__ or ""
    assert [name for name in enclavefl.__all__ if name not in documented] == []
    assert [name for name in enclavefl.__all__ if name not in text] == []


def test_help_from_a_fresh_interpreter_prints_the_api() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PAGER": "cat", "TERM": "dumb"}
    out = subprocess.run(
        [sys.executable, "-c", "import enclavefl; help(enclavefl)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    ).stdout
    for name in ("DataOwnerClient", "ModelOwnerClient", "simulate", "verify_quote", "StreamedData"):
        assert name in out


def test_docs_api_md_names_every_public_name() -> None:
    text = (SRC.parent / "docs" / "api.md").read_text()
    assert [name for name in enclavefl.__all__ if f"`{name}`" not in text] == []

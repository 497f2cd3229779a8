"""Run `enclavefl ARGS` in a fresh interpreter in which some distributions cannot be imported.

A meta-path finder raises ModuleNotFoundError for the blocked top-level names, exactly what Python raises when a
distribution is not installed. At exit the interpreter writes a JSON report: every module it loaded and its peak
RSS (VmHWM, KiB). Shared by test_cli_imports.py (the enclave venv) and test_command_imports.py (node serve, job).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200", "NO_COLOR": "1"}

_RUNNER = textwrap.dedent(
    """
    import importlib.abc, json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from enclavefl.cli.main import app
    try:
        app(args=sys.argv[3:], prog_name="enclavefl")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    peak = next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    with open(sys.argv[2], "w") as out:
        json.dump({"modules": sorted(sys.modules), "peak_kib": int(peak)}, out)
    sys.exit(code if isinstance(code, int) else 1)
    """
)


def command(blocked: Sequence[str], report: Path, args: Sequence[str]) -> list[str]:
    """The argv running `enclavefl ARGS` with `blocked` uninstallable, writing its report to `report`."""
    return [sys.executable, "-c", _RUNNER, json.dumps(list(blocked)), str(report), *args]

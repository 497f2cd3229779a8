"""PyTorch is an extra: without it every public name imports and shows `help()`, what does not train works, and a
name that needs torch says so in one line when it is used (a fresh interpreter in which `torch` cannot be imported,
as tests/cli/blocked_imports.py does for the commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import enclavefl

pytestmark = pytest.mark.slow  # every test here runs a fresh interpreter: `make test-fast` skips them
SRC = Path(enclavefl.__file__).resolve().parents[1]
NEEDS_TORCH = "needs PyTorch: pip install 'enclavefl[torch]'"

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "torch":
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)


def without_torch(body: str, tmp_path: Path) -> Any:
    """Run `body` (which sets `result`) with torch uninstallable; its `result`, through JSON."""
    code = BLOCK_TORCH + textwrap.dedent(body) + "\nimport json; print(json.dumps(result))\n"
    env = {**os.environ, "PYTHONPATH": str(SRC), "PAGER": "cat", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_public_name_imports_and_shows_help_without_torch(tmp_path: Path) -> None:
    result = without_torch(
        """
        import io, pydoc, sys
        import enclavefl

        failures = {}
        for name in enclavefl.__all__:
            try:
                pydoc.render_doc(getattr(enclavefl, name), renderer=pydoc.plaintext)
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
        text = pydoc.render_doc(enclavefl, renderer=pydoc.plaintext)
        result = {
            "failures": failures,
            "missing_from_help": [n for n in enclavefl.__all__ if n not in text],
            "torch_loaded": "torch" in sys.modules,
            "names": len(enclavefl.__all__),
        }
        """,
        tmp_path,
    )

    assert result["failures"] == {}
    assert result["missing_from_help"] == []
    assert result["torch_loaded"] is False
    assert result["names"] == len(enclavefl.__all__)


NAMES_THAT_NEED_TORCH = {
    "TorchTask": "enclavefl.TorchTask(model_factory=object, loss_fn=object)",
    "TensorData": "enclavefl.TensorData(x=[1], y=[1])",
    "StreamedData": "enclavefl.StreamedData(dataset=[])",
    "NumpyTaskAdapter": "enclavefl.NumpyTaskAdapter(object())",
    "FlowerClientTask": "enclavefl.FlowerClientTask(lambda data: None, ['w'])",
    "simulate": "enclavefl.simulate(object(), {'bob': None})",
    "TrainableSubset": "enclavefl.TrainableSubset(object(), trainable=[], base_name='b', base_sha256='0' * 64)",
    "PeftAdapters": "enclavefl.PeftAdapters(base_model=object, config=None, base_name='b')()",
    "causal_lm_loss": "enclavefl.causal_lm_loss([1], [1])",
    "DataOwnerClient": "enclavefl.DataOwnerClient(node='h:1', job='j', policy='p', key='k', cert='c')",
}


@pytest.mark.parametrize("name", sorted(NAMES_THAT_NEED_TORCH))
def test_a_name_that_needs_torch_says_so_in_one_line_when_used(name: str, tmp_path: Path) -> None:
    result = without_torch(
        f"""
        import enclavefl
        try:
            {NAMES_THAT_NEED_TORCH[name]}
        except ModuleNotFoundError as exc:
            result = [type(exc).__name__, str(exc), exc.name]
        else:
            result = None
        """,
        tmp_path,
    )

    assert result == ["ModuleNotFoundError", f"enclavefl.{name} {NEEDS_TORCH}", "torch"]


def test_what_does_not_train_works_without_torch(tmp_path: Path) -> None:
    # prepare: a numpy-only task module, as a data owner's pre-flight loads it
    (tmp_path / "numpy_task.py").write_text(
        "import numpy as np\n"
        "class Task:\n"
        "    def create_model(self): return None\n"
        "    def train(self, model, data, config, *, global_model): return None\n"
        "    def evaluate(self, model, data): return None\n"
        "TASK = Task()\n"
    )

    result = without_torch(
        """
        import numpy as np
        import enclavefl
        from enclavefl.core.weights import ModelWeights
        from enclavefl.transport.owner_tls import OwnerCredentials

        initial = ModelWeights({"w": np.zeros(2, np.float32)})
        pem = OwnerCredentials.generate("alice").certificate_pem.decode()
        job = enclavefl.make_job(name="j", initial_model=initial, owners={"alice": pem}, min_contributions=1)
        with open("job.toml", "w") as out:
            out.write(enclavefl.dump_job(job))
        loaded = enclavefl.load_job("job.toml")
        sim = enclavefl.simulation_job(initial, ["bob", "alice"], rounds=2, train=enclavefl.TrainConfig(local_steps=1))
        task = enclavefl.load_task("numpy_task.py:TASK")
        import sys
        result = [loaded.digest() == job.digest(), sim.min_contributions, type(task).__name__, "torch" in sys.modules]
        """,
        tmp_path,
    )

    assert result == [True, 2, "Task", False]

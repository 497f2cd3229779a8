"""The LoRA example at its small size: federated adapters lower held-out perplexity, beat each owner alone, and the
run as processes over TLS releases the same model as `simulate()`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

for needed in ("peft", "transformers", "tokenizers"):
    pytest.importorskip(needed, reason="the LoRA example needs the llm extra: pip install 'enclavefl[llm]'")

import torch  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lora"
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]


def load_run() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("lora_example_run", EXAMPLE / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tiny matrices: a second torch thread only contends on a shared 2-core machine (the owners' processes run
    with one thread too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv("ENCLAVEFL_LORA_BASE", raising=False)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_the_lora_example_runs_in_process_and_as_processes_over_tls(tmp_path: Path, one_thread: None) -> None:
    table = load_run().main(tmp_path, size="small", processes=True)

    before = table["base model (before)"]["all"]
    federated = table["federated, simulate()"]["all"]
    alone = [values["all"] for row, values in table.items() if row.endswith(" alone")]
    assert len(alone) == 3
    assert federated < before - 1.0
    assert federated < sum(alone) / len(alone)  # the federation learns what no single owner's chapters teach
    processes = table["federated, processes over TLS"]
    assert all(abs(processes[k] - v) <= 1e-3 * v for k, v in table["federated, simulate()"].items())

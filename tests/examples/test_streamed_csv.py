"""The streamed real-data example: CSV shards read in batches train a model, and memory stays flat as they grow."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from enclavefl import StreamedData, TensorData, TrainConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "streamed-csv"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def load(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location(f"streamed_csv_{name}", EXAMPLE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLE))


def test_the_example_trains_from_csv_shards_in_batches(tmp_path: Path) -> None:
    result = load("run").main(tmp_path, rounds=3, shards=3, rows=400)
    assert result["accuracy"] > 0.9  # a chance-level model would be near 0.5


def peak_bytes_of_one_epoch(data: object, task: object) -> int:
    model = task.create_model()  # type: ignore[attr-defined]
    config = TrainConfig(local_epochs=1, batch_size=64, lr=0.1)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        loaded = data() if callable(data) else data
        task.train(model, loaded, config, global_model=None)  # type: ignore[attr-defined]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def eager(directory: Path) -> TensorData:
    """The control: what loading every row at once costs (the simple safetensors case does this)."""
    import torch

    rows = np.concatenate([np.loadtxt(p, delimiter=",", skiprows=1) for p in sorted(directory.glob("*.csv"))])
    return TensorData(
        x=torch.from_numpy(rows[:, :8].astype(np.float32)), y=torch.from_numpy(rows[:, 8:].astype(np.float32))
    )


def test_memory_stays_flat_as_the_data_set_grows_tenfold(tmp_path: Path) -> None:
    shards, task = load("make_shards"), load("task")
    small, large = tmp_path / "small", tmp_path / "large"
    shards.write_shards(small, shards=2, rows_per_shard=1500, seed=0)
    shards.write_shards(large, shards=20, rows_per_shard=1500, seed=0)  # 10x the rows

    peak_bytes_of_one_epoch(StreamedData(dataset=task.CsvShards(small)), task.TASK)  # warm-up: first-use imports
    peak_bytes_of_one_epoch(lambda: eager(small), task.TASK)
    streamed_small = peak_bytes_of_one_epoch(StreamedData(dataset=task.CsvShards(small)), task.TASK)
    streamed_large = peak_bytes_of_one_epoch(StreamedData(dataset=task.CsvShards(large)), task.TASK)
    eager_small = peak_bytes_of_one_epoch(lambda: eager(small), task.TASK)
    eager_large = peak_bytes_of_one_epoch(lambda: eager(large), task.TASK)

    # the measurement sees data held in memory: loading everything grows with the data (the control)
    assert eager_large > 5 * eager_small, (eager_small, eager_large)
    # streaming: ten times the rows, (about) the same peak
    assert streamed_large < 1.5 * streamed_small + 64 * 1024, (streamed_small, streamed_large)
    assert streamed_large < eager_large / 5

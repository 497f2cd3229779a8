"""StreamedData: a torch Dataset read in mini-batches trains and evaluates like the same data in memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from enclavefl import StreamedData, TensorData, TorchTask, TrainConfig
from enclavefl.errors import DataMismatch
from enclavefl.owner.preflight import check_task_fits, load_owner_data


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).mean()


def task(load_data: object = None) -> TorchTask:
    return TorchTask(model_factory=lambda: torch.nn.Linear(3, 1), loss_fn=mse, load_data=load_data)  # type: ignore[arg-type]


def rows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=generator)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]])


def test_streamed_evaluation_equals_the_in_memory_evaluation() -> None:
    x, y = rows(250)  # not a multiple of the evaluation batch: the last batch is weighted by its size
    model = task().create_model()
    in_memory = task().evaluate(model, TensorData(x=x, y=y))
    streamed = task().evaluate(model, StreamedData(dataset=TensorDataset(x, y), eval_batch_size=64))
    assert streamed.num_examples == 250
    assert streamed.loss == pytest.approx(in_memory.loss, rel=1e-5)


def test_local_steps_cycle_the_dataset_and_report_its_size() -> None:
    x, y = rows(10)
    data = StreamedData(dataset=TensorDataset(x, y))
    model = task().create_model()
    result = task().train(model, data, TrainConfig(local_steps=7, batch_size=4, lr=0.05), global_model=None)
    assert len(result.losses) == 7  # 3 batches per pass: the data is read again, reshuffled, as needed
    assert result.num_examples == 10


def test_one_epoch_of_streamed_batches_learns() -> None:
    x, y = rows(512)
    data = StreamedData(dataset=TensorDataset(x, y))
    model = task().create_model()
    before = task().evaluate(model, data).loss
    task().train(model, data, TrainConfig(local_epochs=3, batch_size=16, lr=0.1), global_model=None)
    assert task().evaluate(model, data).loss < before / 10


def test_a_task_reads_its_own_data_from_a_path_and_the_preflight_runs_one_example(tmp_path: Path) -> None:
    from enclavefl.core.job import JobSpec

    x, y = rows(8)
    seen: list[Path] = []

    def load(path: Path) -> StreamedData:
        seen.append(path)
        return StreamedData(dataset=TensorDataset(x, y))

    data = load_owner_data(task(load), tmp_path)
    assert seen == [tmp_path] and isinstance(data, StreamedData)
    check_task_fits(task(load), job=JobSpec(name="j", rounds=1, train=TrainConfig(local_steps=1)), data=data)


def test_a_failing_load_data_is_one_line_naming_the_path(tmp_path: Path) -> None:
    def load(path: Path) -> StreamedData:
        raise FileNotFoundError(f"{path}/shard-0.csv")

    with pytest.raises(DataMismatch, match=r"the task's load_data raised FileNotFoundError"):
        load_owner_data(task(load), tmp_path)


def test_streamed_rows_that_do_not_fit_the_model_are_refused_before_any_round() -> None:
    from enclavefl.core.job import JobSpec

    wrong = StreamedData(dataset=TensorDataset(torch.zeros(4, 5), torch.zeros(4, 1)))  # 5 features, model takes 3
    with pytest.raises(DataMismatch, match=r"x \(1, 5\)"):
        check_task_fits(task(), job=JobSpec(name="j", rounds=1, train=TrainConfig(local_steps=1)), data=wrong)

"""A TrainableSubset trains and exposes only its named part; the frozen rest is a base model known by its digest, and
an owner whose base differs from the job's is refused before it trains or sends anything."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import enclavefl
from enclavefl import TensorData, TorchTask, TrainableSubset, TrainConfig
from enclavefl.core.job import BaseModelSpec
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import BaseModelMismatch, TaskError
from enclavefl.owner.preflight import check_task_fits
from enclavefl.task.subset import check_base_model, tensors_sha256

HEAD = ("head.weight", "head.bias")


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(x)))  # type: ignore[no-any-return]


def backbone(seed: int = 0, *, body_shift: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = Net()
    with torch.no_grad():
        net.body.weight.add_(body_shift)  # another base model under the same head
    return net


def head_only(seed: int = 0, *, body_shift: float = 0.0) -> TrainableSubset:
    return TrainableSubset(backbone(seed, body_shift=body_shift), trainable=HEAD, base_name="frozen-body")


def task(*, body_shift: float = 0.0) -> TorchTask:
    return TorchTask(model_factory=lambda: head_only(body_shift=body_shift), loss_fn=torch.nn.functional.mse_loss)


def data(owner: int) -> TensorData:
    g = torch.Generator().manual_seed(owner)
    x = torch.randn(32, 4, generator=g)
    return TensorData(x=x, y=x.sum(dim=1, keepdim=True) * (owner + 1))


def test_only_the_named_part_is_in_the_state_dict_and_trains() -> None:
    model = head_only()
    body_before = model.full_model.body.weight.detach().clone()  # type: ignore[union-attr]
    head_before = model.full_model.head.weight.detach().clone()  # type: ignore[union-attr]

    task().train(model, data(0), TrainConfig(local_steps=5, lr=0.1), global_model=None)

    assert sorted(model.state_dict()) == sorted(HEAD)
    assert [n for n, _ in model.named_parameters()] == sorted(HEAD)
    assert torch.equal(model.full_model.body.weight, body_before)  # type: ignore[union-attr]
    assert not torch.equal(model.full_model.head.weight, head_before)  # type: ignore[union-attr]
    assert not model.full_model.body.weight.requires_grad  # type: ignore[union-attr]


def test_loading_the_travelling_part_changes_the_full_model_in_place() -> None:
    model = head_only()
    new = {n: torch.full_like(t, 0.5) for n, t in model.state_dict().items()}

    model.load_state_dict(new, strict=True)

    assert torch.equal(model.full_model.head.weight, torch.full((1, 8), 0.5))  # type: ignore[union-attr]
    assert torch.allclose(model(torch.zeros(1, 4)), model.full_model(torch.zeros(1, 4)))


def test_the_base_digest_covers_the_frozen_tensors_only() -> None:
    a, b = head_only(seed=0), head_only(seed=0)
    with torch.no_grad():
        b.full_model.head.weight.add_(1.0)  # type: ignore[union-attr]  # the travelling part differs: same base

    assert a.frozen_base == b.frozen_base
    assert head_only(seed=1).frozen_base.sha256 != a.frozen_base.sha256  # another body: another base


def test_the_base_digest_is_the_weights_digest_and_ignores_dict_order() -> None:
    tensors = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
    reordered = dict(reversed(list(tensors.items())))

    expected = ModelWeights({n: t.numpy() for n, t in tensors.items()}).sha256().hex()

    assert tensors_sha256(tensors) == expected
    assert tensors_sha256(reordered) == expected


def test_the_base_digest_sees_one_changed_value_and_handles_bfloat16() -> None:
    tensors = {"w": torch.ones(3, dtype=torch.bfloat16)}
    changed = {"w": torch.tensor([1.0, 1.0, 1.0078125], dtype=torch.bfloat16)}
    as_float = {"w": torch.ones(3, dtype=torch.float32)}

    assert tensors_sha256(tensors) != tensors_sha256(changed)
    assert tensors_sha256(tensors) != tensors_sha256(as_float)


@pytest.mark.parametrize(
    ("trainable", "message"),
    [
        (["head.weight", "tail.bias"], "tail.bias are not parameters"),
        ([], "no parameter"),
        (lambda name: False, "no parameter"),
    ],
)
def test_a_bad_subset_is_refused_with_a_task_error(trainable: object, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        TrainableSubset(backbone(), trainable=trainable, base_name="b")  # type: ignore[arg-type]


def test_a_filter_chooses_the_subset_by_name() -> None:
    model = TrainableSubset(backbone(), trainable=lambda name: name.startswith("head."), base_name="b")

    assert sorted(model.state_dict()) == sorted(HEAD)


def test_check_base_model_refuses_each_kind_of_mismatch_with_both_digests() -> None:
    model = head_only()
    other = BaseModelSpec(name="frozen-body", sha256="ee" * 32)

    check_base_model(model, model.frozen_base)  # same digest: accepted
    check_base_model(model, dataclasses.replace(model.frozen_base, name="renamed"))  # the name is only a label
    with pytest.raises(BaseModelMismatch, match=f"{model.frozen_base.sha256}.*{'ee' * 32}"):
        check_base_model(model, other)
    with pytest.raises(BaseModelMismatch, match="names no \\[base_model\\]"):
        check_base_model(model, None)
    with pytest.raises(BaseModelMismatch, match="has no frozen base"):
        check_base_model(backbone(), other)
    check_base_model(backbone(), None)  # a plain model and a plain job


@pytest.fixture(scope="module")
def history() -> enclavefl.SimulationHistory:
    return enclavefl.simulate(task(), {"bob": data(0), "alice": data(1)}, rounds=2, train=TrainConfig(local_steps=3))


def test_simulate_binds_the_base_model_and_moves_only_the_subset(history: enclavefl.SimulationHistory) -> None:
    assert history.job.base_model == head_only().frozen_base
    assert history.job.model_schema is not None and history.job.model_schema.names == tuple(sorted(HEAD))
    assert sorted(history.final_model) == sorted(HEAD)
    assert all(summary.contributions == 2 and not summary.rejected for summary in history.rounds)


def test_an_owner_whose_base_differs_is_refused_before_any_round(history: enclavefl.SimulationHistory) -> None:
    rounds: list[object] = []

    with pytest.raises(BaseModelMismatch, match="refusing to train on another base model"):
        enclavefl.simulate(
            task(body_shift=1e-3), {"bob": data(0), "alice": data(1)}, job=history.job, on_round=rounds.append
        )

    assert rounds == []


def test_preflight_refuses_another_base_before_looking_at_the_data(history: enclavefl.SimulationHistory) -> None:
    with pytest.raises(BaseModelMismatch):
        check_task_fits(task(body_shift=1e-3), job=history.job, data=object())  # data the model could not even run


def test_base_bytes_count_a_tied_tensor_once() -> None:
    net = backbone()
    tied = torch.nn.Linear(4, 8)
    tied.weight = net.body.weight  # type: ignore[assignment]  # as a language model ties its embedding and head
    net.add_module("tied", tied)
    model = TrainableSubset(net, trainable=HEAD, base_name="b")

    assert model.base_nbytes() == (8 * 4 + 8 + 8) * 4  # body.weight once, body.bias, tied.bias

"""Flower's quickstart-pytorch `ClientApp`, as written, trains through enclavefl: in process and networked.

The app (tests/flower/quickstart, from Flower's repository, Apache-2.0) gets each round's global model as an
ArrayRecord and the round's config; only its data loader reads local files (CIFAR-10-shaped, made here from a
seed: nothing is downloaded). Needs the `flower` extra (flwr); CI runs it in a venv with it.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("flwr", reason="flwr is optional (pip install 'enclavefl[flower]'); CI installs it")
sys.path.insert(0, str(Path(__file__).parent / "quickstart"))
sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))

from node_harness import Workspace, workspace
from pytorchexample.client_app import app
from pytorchexample.task import Net

import enclavefl
from enclavefl import TrainConfig
from enclavefl.core.codec import encode_weights
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.task.flower_app import FlowerClientAppTask

__all__ = ["workspace"]
OWNERS = {"alice": {"partition-id": 0, "num-partitions": 2}, "bob": {"partition-id": 1, "num-partitions": 2}}


@pytest.fixture
def local_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two partitions of 40 images, 3 x 32 x 32, whose label is the brightest of three colour bands: learnable."""
    generator = torch.Generator().manual_seed(7)
    for name in ("partition-0", "partition-1", "centralized"):
        label = torch.randint(0, 3, (40,), generator=generator)
        img = torch.randn(40, 3, 32, 32, generator=generator) * 0.3
        img[torch.arange(40), label] += 1.0
        save_file({"img": img.contiguous(), "label": label}, str(tmp_path / f"{name}.safetensors"))
    monkeypatch.setenv("QUICKSTART_DATA", str(tmp_path))
    return tmp_path


def task() -> FlowerClientAppTask:
    return FlowerClientAppTask(app, model_fn=Net, run_config={"batch-size": 8})


def test_the_quickstart_client_app_trains_in_simulation_and_reports_its_loss(local_cifar: Path) -> None:
    torch.manual_seed(0)
    initial = weights_from_module(Net())

    history = enclavefl.simulate(
        task(), OWNERS, rounds=3, train=TrainConfig(local_epochs=2, lr=0.01), initial_model=initial
    )

    losses = history.metric("train_loss")
    assert all(loss is not None and loss > 0.05 for loss in losses), losses  # the app's own train_loss, not 0
    assert losses[-1] < losses[0]
    assert history.final_model.sha256() != initial.sha256()
    final = history.load_model(task())
    evaluated = task().evaluate(final, OWNERS["alice"])  # the app's @app.evaluate(): eval_loss and eval_acc
    assert set(evaluated.metrics) == {"eval_acc"} and evaluated.num_examples == 8


def test_the_quickstart_client_app_trains_networked_through_a_node(local_cifar: Path, workspace: Workspace) -> None:
    from enclavefl.core.job import TrainConfig as Train
    from enclavefl.task.evaluation import central_evaluation

    torch.manual_seed(0)
    initial = weights_from_module(Net())
    ws = workspace.with_job(
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        train=Train(local_epochs=2, lr=0.01, batch_size=8),
        rounds=2,
    )
    ws.model_file.write_bytes(encode_weights(initial))
    node = ws.node()
    reports: dict[str, object] = {}

    def owner(name: str) -> None:
        key, cert = ws.keys[name]
        with enclavefl.DataOwnerClient(
            node=node.address, job=ws.job_file, policy=ws.policy_file, key=key, cert=cert
        ) as c:
            reports[name] = c.run(task(), OWNERS[name])

    threads = [threading.Thread(target=owner, args=(n,)) for n in OWNERS]
    try:
        for thread in threads:
            thread.start()
        key, cert = ws.keys["model-owner"]
        with enclavefl.ModelOwnerClient.connect(
            node.address, job=ws.job_file, policy=ws.policy_file, key=key, cert=cert
        ) as mo:
            mo.submit(ws.model_file)
            records = list(mo.rounds(evaluate=central_evaluation(task(), {"partition-id": 0, "num-partitions": 1})))
            final = mo.download()
        for thread in threads:
            thread.join(60)
    finally:
        node.stop(0)

    assert [r.round for r in records] == [1, 2]
    assert all(r.train["train_loss"] > 0.05 for r in records)  # released mean of the app's train_loss
    assert all(set(r.central) == {"loss", "eval_acc"} for r in records)  # the app's evaluate, on released models
    assert final.weights.sha256() != initial.sha256()
    assert set(reports) == set(OWNERS)

"""The parties through the public API against a real node (gRPC over TLS on loopback, simulated enclave)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from node_harness import Workspace, in_threads, numpy_owner, workspace
from safetensors.numpy import save_file

import enclavefl
from enclavefl import DataOwnerClient, ModelOwnerClient, TensorData, TorchTask
from enclavefl.errors import Cancelled, MrEnclaveMismatch

__all__ = ["workspace"]
pytestmark = pytest.mark.filterwarnings("ignore::enclavefl.tee.verify.policy.InsecurePolicyWarning")


def linear_task() -> TorchTask:
    import torch

    return TorchTask(model_factory=lambda: torch.nn.Linear(2, 1), loss_fn=lambda p, t: ((p - t) ** 2).sum())


def alice(ws: Workspace, address: str, **kwargs: object) -> DataOwnerClient:
    key, cert = ws.keys["alice"]
    return DataOwnerClient(node=address, job=ws.job_file, policy=ws.policy_file, key=key, cert=cert, **kwargs)  # type: ignore[arg-type]


def test_model_owner_and_data_owner_run_a_job_and_the_download_verifies(workspace: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "alice.safetensors"
    save_file({"x": np.array([[1, 0], [1, 1]], np.float32), "y": np.ones((2, 1), np.float32)}, str(data))
    node = workspace.node()
    reports: list[enclavefl.DataOwnerReport] = []
    try:
        key, cert = workspace.keys["model-owner"]
        with ModelOwnerClient.connect(
            node.address, job=workspace.job_file, policy=workspace.policy_file, key=key, cert=cert
        ) as model_owner:
            digest = model_owner.submit(workspace.model_file)
            bob = next(in_threads(numpy_owner(workspace, node.address, "bob", 0.5)))
            owner = alice(workspace, node.address)
            runner = next(in_threads(lambda: reports.append(owner.run(linear_task(), data))))
            summaries = list(model_owner.watch())
            runner.join(30)
            bob.join(10)
            final = model_owner.download(tmp_path / "model.safetensors")
    finally:
        node.stop(0)

    assert digest == workspace.job.initial_model_sha256
    assert [s.round for s in summaries] == [1, 2] and all(s.contributions == 2 for s in summaries)
    assert reports and reports[0].final_state.value == "finished" and reports[0].contributed == [1, 2]
    assert owner.verified is not None and owner.verified.simulated
    assert final.weights.sha256() == final.receipts[-1].global_model_sha256
    provenance = enclavefl.verify_receipts(tmp_path / "model.receipts.json", policy=workspace.policy, job=workspace.job)
    assert provenance.final_model_sha256 == final.weights.sha256()


def test_a_running_data_owner_is_cancelled_from_another_thread(workspace: Workspace) -> None:
    node = workspace.node()  # no initial model: the job never starts, the owner waits
    attested = threading.Event()
    errors: list[BaseException] = []
    try:
        owner = alice(workspace, node.address, on_attested=lambda _: attested.set())
        import torch

        data = TensorData(x=torch.zeros(2, 2), y=torch.zeros(2, 1))

        def run() -> None:
            try:
                owner.run(linear_task(), data)
            except BaseException as exc:
                errors.append(exc)

        with owner:
            thread = next(in_threads(run))
            assert attested.wait(30)
        thread.join(10)  # leaving the `with` block cancelled it
    finally:
        node.stop(0)

    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)


def test_a_node_with_another_mrenclave_is_refused_before_anything_is_sent(workspace: Workspace) -> None:
    node = workspace.node()
    try:
        policy = enclavefl.AttestationPolicy.strict().allow_mrenclave(b"\x01" * 32)
        policy = policy.allow_simulation(workspace.policy.simulation_root_ca_der or b"")
        key, cert = workspace.keys["model-owner"]
        with pytest.raises(MrEnclaveMismatch):
            ModelOwnerClient.connect(node.address, job=workspace.job, policy=policy, key=key, cert=cert)
    finally:
        node.stop(0)


STREAMED_TASK = """
import csv
from pathlib import Path

import torch
from torch.utils.data import IterableDataset

from enclavefl import StreamedData, TorchTask


class Rows(IterableDataset):
    def __init__(self, directory):
        self.files = sorted(Path(directory).glob("*.csv"))

    def __iter__(self):
        for path in self.files:
            with path.open() as rows:
                for row in csv.reader(rows):
                    values = [float(v) for v in row]
                    yield torch.tensor(values[:2]), torch.tensor(values[2:])


TASK = TorchTask(
    model_factory=lambda: torch.nn.Linear(2, 1),
    loss_fn=lambda p, t: ((p - t) ** 2).mean(),
    load_data=lambda path: StreamedData(dataset=Rows(path)),
)
"""


def test_data_owner_run_streams_a_directory_the_task_reads_itself(workspace: Workspace, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from enclavefl.cli.main import app

    (tmp_path / "task.py").write_text(STREAMED_TASK)
    shards = tmp_path / "alice-shards"
    shards.mkdir()
    for index in range(3):
        (shards / f"{index}.csv").write_text("".join(f"{i % 2},{(i + 1) % 2},{i % 2}\n" for i in range(50)))
    key, cert = workspace.keys["alice"]
    node = workspace.node(initial_model=enclavefl.read_initial_model(workspace.model_file))
    try:
        bob = next(in_threads(numpy_owner(workspace, node.address, "bob", 0.5)))
        result = CliRunner().invoke(
            app,
            [
                "data-owner",
                "run",
                "--node",
                node.address,
                "--job",
                str(workspace.job_file),
                "--policy",
                str(workspace.policy_file),
                "--task",
                f"{tmp_path / 'task.py'}:TASK",
                "--data",
                str(shards),
                "--key",
                str(key),
                "--cert",
                str(cert),
                "--name",
                "alice",
                "--connect-timeout",
                "5",
            ],
        )
        bob.join(10)
    finally:
        node.stop(0)
    assert result.exit_code == 0, result.output
    assert "[alice] round 2 local losses:" in result.output and "job finished" in result.output

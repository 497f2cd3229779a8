"""`enclavefl job watch`: records per round (JSON, CSV, a file), the model owner's own evaluation of each released
model, TensorBoard event files and an MLflow run, over a real node on loopback."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from node_harness import Workspace, in_threads, model, workspace
from safetensors.numpy import save_file
from typer.testing import CliRunner

from enclavefl.api.model_owner import ModelOwnerClient
from enclavefl.cli.main import app
from enclavefl.core.codec import encode_weights
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipt_checks import sign_acknowledgement, verify_receipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import NotEnrolled, ProtocolError, RoundStateError, WrongRound
from enclavefl.owner.attested import connect_data_owner
from enclavefl.owner.metrics_history import RoundRecord, read_history
from enclavefl.owner.round_follower import follow_rounds
from enclavefl.transport.grpc_client import NodeClient

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
SEED_TASK = "enclavefl.demos.seed:SEED_TASK"  # nn.Linear(2, 1), sum of squared errors: the harness model
X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
Y = np.array([[3.0], [2.0], [5.0]], np.float32)


def gated_owner(
    ws: Workspace, address: str, name: str, value: float, ready: Callable[[int], bool]
) -> Callable[[], None]:
    """A numpy data owner that uploads round r only once `ready(r)`: the model owner has evaluated round r - 1.

    Without the gate a fast round could be released before the model owner fetched the one before it."""

    def run() -> None:
        node = connect_data_owner(address, name=name, job=ws.job, policy=ws.policy, credentials=ws.credentials(name))
        done: set[int] = set()
        signed: set[int] = set()
        status = None
        while True:
            status = node.client.node_status(seen=status, wait_seconds=0.2)
            if status.job_state.value in ("finished", "failed"):
                return
            if status.phase.value == "open" and status.round not in done:
                deadline = time.monotonic() + 60
                while not ready(status.round) and time.monotonic() < deadline:
                    time.sleep(0.02)
                done.add(status.round)
                payload = encode_weights(model(value + status.round))
                node.client.upload_update(
                    UpdateMessage.of(
                        owner=name, round=status.round, num_examples=1, payload=payload, metrics={"train_loss": value}
                    )
                )
            if status.phase.value == "signing" and status.round not in signed:
                pending = node.client.pending_receipt()
                verify_receipt(pending, node.node_public_key_pem)
                key = ws.credentials(name).private_key
                node.client.acknowledge(sign_acknowledgement(key, owner=name, receipt=pending))
                signed.add(status.round)

    return run


def recorded_rounds(path: Path) -> Callable[[int], bool]:
    def ready(round_index: int) -> bool:
        if round_index == 1:
            return True
        return path.is_file() and any(r.round == round_index - 1 for r in read_history(path))

    return ready


def mo_args(ws: Workspace, address: str) -> list[str]:
    key, cert = ws.keys["model-owner"]
    node = ["--node", address, "--job", str(ws.job_file), "--policy", str(ws.policy_file)]
    return [*node, "--key", str(key), "--cert", str(cert)]


def expected_sse(value: float) -> float:
    """The seed task's loss (sum of squared errors) of Linear(2, 1) with every weight and the bias at `value`."""
    prediction = X @ np.full((2, 1), value) + value
    return float(((prediction - Y) ** 2).sum())


def run_job(ws: Workspace, *extra: str, record: Path) -> tuple[object, object]:
    """Submit, then watch with `extra` options while two gated owners (values 1 and 3) train; (watch, node)."""
    node = ws.node()
    try:
        ready = recorded_rounds(record)
        threads = list(
            in_threads(*(gated_owner(ws, node.address, n, v, ready) for n, v in (("alice", 1.0), ("bob", 3.0))))
        )
        submitted = runner.invoke(app, ["job", "submit", *mo_args(ws, node.address), "--model", str(ws.model_file)])
        assert submitted.exit_code == 0, submitted.output
        watched = runner.invoke(app, ["job", "watch", *mo_args(ws, node.address), "--record", str(record), *extra])
        for thread in threads:
            thread.join(20)
    finally:
        node.stop(0)
    return watched, node


def test_watch_evaluates_each_released_model_and_prints_one_json_record_per_round(workspace: Workspace) -> None:
    data = workspace.directory / "test.safetensors"
    save_file({"x": X, "y": Y}, str(data))
    record = workspace.directory / "rounds.jsonl"

    watched, _ = run_job(workspace, "--json", "--evaluate", SEED_TASK, "--eval-data", str(data), record=record)

    assert watched.exit_code == 0, watched.output
    lines = [line for line in watched.stdout.splitlines() if line.startswith("{")]
    records = [RoundRecord.from_json(line) for line in lines]
    assert [r.round for r in records] == [1, 2]
    assert [r.contributions for r in records] == [2, 2]
    # round r: alice uploads 1 + r, bob 3 + r; plain mean 2 + r in every tensor
    for r in records:
        assert r.train == {"train_loss": pytest.approx(2.0)}  # mean of the owners' 1 and 3, released under K = 2
        assert r.central["loss"] == pytest.approx(expected_sse(2.0 + r.round), rel=1e-5)
    assert read_history(record) == tuple(records)  # --record keeps what --json printed
    assert "job finished" in watched.stderr


def test_watch_csv_has_a_header_and_one_row_per_round(workspace: Workspace) -> None:
    record = workspace.directory / "rounds.jsonl"

    watched, _ = run_job(workspace, "--csv", record=record)

    assert watched.exit_code == 0, watched.output
    rows = list(csv.DictReader(io.StringIO(watched.stdout)))
    assert [row["round"] for row in rows] == ["1", "2"]
    assert [float(row["train/train_loss"]) for row in rows] == [2.0, 2.0]


def test_watch_writes_tensorboard_event_files_the_tensorboard_reader_reads(workspace: Workspace) -> None:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="needs the tensorboard extra"
    )
    logdir = workspace.directory / "runs"
    record = workspace.directory / "rounds.jsonl"

    watched, _ = run_job(workspace, "--tensorboard", str(logdir), record=record)

    assert watched.exit_code == 0, watched.output
    events = event_accumulator.EventAccumulator(str(logdir))
    events.Reload()
    assert {"node/contributions", "train/train_loss"} <= set(events.Tags()["scalars"])
    assert [(e.step, e.value) for e in events.Scalars("node/contributions")] == [(1, 2.0), (2, 2.0)]
    assert [(e.step, e.value) for e in events.Scalars("train/train_loss")] == [(1, 2.0), (2, 2.0)]


def test_watch_logs_an_mlflow_run_with_the_jobs_parameters_and_every_round(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = pytest.importorskip("mlflow.tracking", reason="needs the mlflow extra")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps a file store only when asked
    uri = (workspace.directory / "mlruns").as_uri()
    record = workspace.directory / "rounds.jsonl"

    watched, _ = run_job(workspace, "--mlflow", uri, "--mlflow-experiment", "trial", record=record)

    assert watched.exit_code == 0, watched.output
    client = tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("trial")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["job_digest"] == workspace.job.digest().hex()
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "node/contributions")
    assert sorted((m.step, m.value) for m in history) == [(1, 2.0), (2, 2.0)]


def test_a_missing_extra_is_one_line_and_status_2_before_the_node_is_contacted(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)  # as if not installed

    result = runner.invoke(
        app, ["job", "watch", *mo_args(workspace, "127.0.0.1:1"), "--tensorboard", str(workspace.directory / "tb")]
    )

    assert result.exit_code == ExitCode.CONFIG
    assert result.output.strip() == (
        "error: ConfigError: --tensorboard: needs the tensorboard package (pip install 'enclavefl[tensorboard]')"
    )


def test_the_model_owner_may_fetch_a_released_model_until_the_next_release_and_a_data_owner_may_not(
    workspace: Workspace,
) -> None:
    node = workspace.node()
    evaluated: list[tuple[int, float]] = []
    gate = {1: threading.Event(), 2: threading.Event()}

    def evaluate(round_index: int, weights: ModelWeights) -> dict[str, float]:
        evaluated.append((round_index, float(weights["bias"][0])))
        gate[round_index].set()
        return {"bias": float(weights["bias"][0])}

    try:
        threads = list(
            in_threads(
                *(
                    gated_owner(workspace, node.address, n, v, lambda r: r == 1 or gate[r - 1].wait(30))
                    for n, v in (("alice", 1.0), ("bob", 3.0))
                )
            )
        )
        mo = ModelOwnerClient.connect(
            node.address,
            job=workspace.job_file,
            policy=workspace.policy_file,
            key=workspace.keys["model-owner"][0],
            cert=workspace.keys["model-owner"][1],
        )
        with pytest.raises(RoundStateError, match="initial model"):  # nothing released yet
            mo.released_model_bytes(1)
        mo.submit(workspace.model_file)
        records = list(mo.rounds(evaluate=evaluate))
        with pytest.raises(WrongRound):  # round 1's model went with round 2's release
            mo.released_model_bytes(1)
        final = mo.released_model_bytes(2)
        for thread in threads:
            thread.join(20)
        outsider = NodeClient.connect(node.address)
        with pytest.raises(NotEnrolled):  # not joined: no model at all
            outsider.released_model_bytes(2)
        outsider.close()
        mo.close()
    finally:
        node.stop(0)

    assert evaluated == [(1, 3.0), (2, 4.0)]  # the mean of (1 + r, 3 + r)
    assert [r.central for r in records] == [{"bias": 3.0}, {"bias": 4.0}]
    assert final == encode_weights(model(4.0))


class FakeSource:
    """A node as the model owner sees it, answering with what the test says."""

    def __init__(self, models: dict[int, bytes | Exception]) -> None:
        self.models = models

    def watch(self, *, after_round: int = 0) -> list[RoundSummary]:
        digest = model(2.0).sha256().hex()
        return [
            RoundSummary(round=r, contributions=2, global_model_sha256=digest, metrics={}, rejected={})
            for r in sorted(self.models)
        ]

    def released_model_bytes(self, round_index: int) -> bytes:
        answer = self.models[round_index]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_round_whose_model_is_gone_is_recorded_without_central_metrics_and_said_once() -> None:
    said: list[str] = []
    source = FakeSource({1: WrongRound("the last released is 2"), 2: encode_weights(model(2.0))})

    records = list(follow_rounds(source, evaluate=lambda r, w: {"bias": float(w["bias"][0])}, on_line=said.append))

    assert [r.central for r in records] == [{}, {"bias": 2.0}]
    assert said == ["round 1: no central evaluation, the node no longer holds its model (the last released is 2)"]


def test_a_node_that_hands_the_model_owner_another_model_than_the_released_one_is_refused() -> None:
    source = FakeSource({1: encode_weights(model(7.0))})  # the summary names model(2.0)'s digest

    with pytest.raises(ProtocolError, match="not the released one"):
        list(follow_rounds(source, evaluate=lambda r, w: {}))

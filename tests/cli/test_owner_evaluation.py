"""Owners' evaluation on their held-out split, networked: every N rounds each owner evaluates the model the round
starts from, the figures travel with its update, and the node releases only means over >= K owners; the model
owner sees them in `job watch`, its record file (`job plot`) and TensorBoard."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from node_harness import Workspace, in_threads, model, workspace
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.codec import encode_weights
from enclavefl.core.receipt_checks import sign_acknowledgement
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.demos.seed import SEED_TASK
from enclavefl.errors import MalformedUpdate, UpdateRejected
from enclavefl.owner.attested import connect_data_owner
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.owner.metrics_history import read_history, series
from enclavefl.task import EvalResult, TensorData
from enclavefl.transport.grpc_client import NodeClient

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]

TRAIN = {
    "alice": TensorData(x=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), y=torch.tensor([[3.0], [2.0]])),
    "bob": TensorData(x=torch.tensor([[1.0, 1.0], [2.0, 1.0]]), y=torch.tensor([[5.0], [7.0]])),
}
HELD_OUT = {  # different sizes: the released mean is weighted by each owner's held-out examples
    "alice": TensorData(x=torch.tensor([[2.0, 2.0]]), y=torch.tensor([[10.0]])),
    "bob": TensorData(x=torch.tensor([[0.0, 2.0], [1.0, 3.0], [3.0, 0.0]]), y=torch.tensor([[4.0], [9.0], [6.0]])),
}
Seen = dict[tuple[str, int], EvalResult]


def torch_owner(ws: Workspace, address: str, name: str, seen: Seen, *, held_out: bool = True) -> Callable[[], None]:
    """A real data owner (the seed task, torch) that keeps what it evaluated, to compare with what is released."""

    def run() -> None:
        node = connect_data_owner(address, name=name, job=ws.job, policy=ws.policy, credentials=ws.credentials(name))
        owner = DataOwner(
            name=name, task=SEED_TASK, data=TRAIN[name], job=ws.job, held_out=HELD_OUT[name] if held_out else None
        )
        evaluate = owner.evaluate_start

        def kept(round_index: int, start: object) -> EvalResult | None:
            result = evaluate(round_index, start)  # type: ignore[arg-type]
            if result is not None:
                seen[(name, round_index)] = result
            return result

        owner.evaluate_start = kept  # type: ignore[method-assign]
        run_data_owner(owner, node)

    return run


def mo_args(ws: Workspace, address: str) -> list[str]:
    key, cert = ws.keys["model-owner"]
    node = ["--node", address, "--job", str(ws.job_file), "--policy", str(ws.policy_file)]
    return [*node, "--key", str(key), "--cert", str(cert)]


def run_job(ws: Workspace, seen: Seen, *extra: str, evaluators: tuple[str, ...] = ("alice", "bob")) -> object:
    node = ws.node()
    try:
        threads = list(
            in_threads(*(torch_owner(ws, node.address, n, seen, held_out=n in evaluators) for n in ("alice", "bob")))
        )
        submitted = runner.invoke(app, ["job", "submit", *mo_args(ws, node.address), "--model", str(ws.model_file)])
        assert submitted.exit_code == 0, submitted.output
        watched = runner.invoke(app, ["job", "watch", *mo_args(ws, node.address), *extra])
        for thread in threads:
            thread.join(30)
    finally:
        node.stop(0)
    return watched


def weighted_mean(seen: Seen, round_index: int) -> dict[str, float]:
    results = [seen[(n, round_index)] for n in ("alice", "bob")]
    total = sum(r.num_examples for r in results)
    return {k: sum(r.metrics[k] * r.num_examples for r in results) / total for k in results[0].metrics}


def test_owners_evaluation_is_released_as_a_weighted_mean_and_reaches_watch_records_and_tensorboard(
    workspace: Workspace,
) -> None:
    ws = workspace.with_job(rounds=3, evaluate_every=2)  # the models rounds 1 and 3 start from: initial, round 2's
    seen: Seen = {}
    record = ws.directory / "rounds.jsonl"
    logdir = ws.directory / "runs"
    extra = ["--record", str(record)]
    has_tensorboard = _has_tensorboard()
    if has_tensorboard:
        extra += ["--tensorboard", str(logdir)]

    watched = run_job(ws, seen, *extra)

    assert watched.exit_code == 0, watched.output  # type: ignore[attr-defined]
    assert sorted(seen) == [("alice", 1), ("alice", 3), ("bob", 1), ("bob", 3)]  # every 2nd round, from round 1
    assert seen[("alice", 1)].metrics["loss"] != pytest.approx(seen[("bob", 1)].metrics["loss"])
    history = read_history(record)
    by_round = {r.round: r for r in history}
    assert by_round[1].federated == pytest.approx(weighted_mean(seen, 1))
    assert by_round[1].federated_round == 0  # round 1 started from the initial model
    assert by_round[2].federated == {}
    assert by_round[3].federated == pytest.approx(weighted_mean(seen, 3))
    assert by_round[3].federated_round == 2
    assert [x for x, _ in series(history)["federated/loss"]] == [0, 2]  # curves place them at the model's round
    output = watched.output  # type: ignore[attr-defined]
    assert "owners' evaluation of round 2's model: loss=" in output
    if has_tensorboard:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(logdir))
        events.Reload()
        logged = [(e.step, e.value) for e in events.Scalars("federated/loss")]
        assert logged == [
            (0, pytest.approx(by_round[1].federated["loss"])),
            (2, pytest.approx(by_round[3].federated["loss"])),
        ]


def test_with_fewer_than_k_evaluators_nothing_of_the_evaluation_is_released(workspace: Workspace) -> None:
    ws = workspace.with_job(rounds=1, evaluate_every=1)  # K = 2, and only alice holds data out
    seen: Seen = {}
    record = ws.directory / "rounds.jsonl"

    watched = run_job(ws, seen, "--record", str(record), evaluators=("alice",))

    assert watched.exit_code == 0, watched.output  # type: ignore[attr-defined]
    assert set(seen) == {("alice", 1)}  # alice evaluated and sent her figures
    (only,) = read_history(record)
    assert only.contributions == 2 and only.train  # the round and its training metrics are released
    assert only.federated == {}  # her figures alone are not


def _has_tensorboard() -> bool:
    try:
        import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
    except ImportError:
        return False
    return True


def test_one_owners_extra_metric_is_never_released_alone_and_a_refused_update_takes_its_figures_with_it(
    workspace: Workspace,
) -> None:
    """Isolation attempts through the real node: a metric only one owner reports (its own number, were it
    released), and an owner whose update the node refused after it had sent a plausible evaluation."""
    ws = workspace.with_job(rounds=1, evaluate_every=1)
    node = ws.node()
    try:
        clients = {
            n: connect_data_owner(node.address, name=n, job=ws.job, policy=ws.policy, credentials=ws.credentials(n))
            for n in ("alice", "bob")
        }
        submitted = runner.invoke(app, ["job", "submit", *mo_args(ws, node.address), "--model", str(ws.model_file)])
        assert submitted.exit_code == 0, submitted.output
        status = clients["alice"].client.node_status(seen=None, wait_seconds=5.0)
        while status.phase.value != "open":
            status = clients["alice"].client.node_status(seen=status, wait_seconds=5.0)

        def upload(name: str, evaluation: dict[str, float], payload: bytes) -> None:
            clients[name].client.upload_update(
                UpdateMessage.of(
                    owner=name, round=1, num_examples=1, payload=payload, evaluation=evaluation, evaluation_examples=5
                )
            )

        with pytest.raises(UpdateRejected):  # a truncated model: refused, and its evaluation with it
            upload("bob", {"loss": 100.0}, encode_weights(model(1.0))[:-4])
        upload("alice", {"loss": 1.0, "only_mine": 0.25}, encode_weights(model(1.0)))
        upload("bob", {"loss": 3.0}, encode_weights(model(3.0)))
        for name, node_client in clients.items():  # the second phase: both sign the sealed round's receipt
            pending = _pending(node_client.client)
            key = ws.credentials(name).private_key
            node_client.client.acknowledge(sign_acknowledgement(key, owner=name, receipt=pending))
        deadline = time.monotonic() + 30.0  # the release follows the last signature on the round thread
        while not (summaries := node.summaries_after(0)[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        node.stop(0)
    (summary,) = summaries
    assert summary.evaluation == pytest.approx({"loss": 2.0})  # the two accepted figures; not 100, not only_mine


def _pending(client: NodeClient) -> SignedReceipt:
    status = client.node_status(seen=None, wait_seconds=5.0)
    while status.phase.value != "signing":
        status = client.node_status(seen=status, wait_seconds=5.0)
    return client.pending_receipt()


def test_an_evaluation_in_a_round_the_job_does_not_name_is_refused_with_one_line(workspace: Workspace) -> None:
    ws = workspace.with_job(rounds=2, evaluate_every=0)
    node = ws.node()
    try:
        alice = connect_data_owner(
            node.address, name="alice", job=ws.job, policy=ws.policy, credentials=ws.credentials("alice")
        )
        submitted = runner.invoke(app, ["job", "submit", *mo_args(ws, node.address), "--model", str(ws.model_file)])
        assert submitted.exit_code == 0, submitted.output
        with pytest.raises(MalformedUpdate, match="asks for none in round 1"):
            alice.client.upload_update(
                UpdateMessage.of(
                    owner="alice",
                    round=1,
                    num_examples=1,
                    payload=encode_weights(model(1.0)),
                    evaluation={"loss": 1.0},
                    evaluation_examples=3,
                )
            )
    finally:
        node.stop(0)


def test_evaluate_every_is_in_the_digest_and_the_job_file_and_refused_where_no_figure_may_leave(
    workspace: Workspace,
) -> None:
    import dataclasses

    from enclavefl.core.jobfile import load_job
    from enclavefl.core.jobfile_write import dump_job
    from enclavefl.errors import JobSpecError

    every2 = workspace.with_job(evaluate_every=2)
    assert every2.job.digest() != workspace.job.digest()  # owners consent to it: it is bound into the quote
    assert load_job(every2.job_file).evaluate_every == 2 and "evaluate_every = 2" in dump_job(every2.job)
    assert "evaluate_every" not in dump_job(workspace.job)  # jobs without it keep their files and digests
    assert [r for r in range(1, 8) if every2.job.evaluates_before(r)] == [1, 3, 5, 7]
    with pytest.raises(JobSpecError, match="a DP job releases no metrics"):
        dataclasses.replace(workspace.job, evaluate_every=1, dp={"noise_multiplier": 1.0, "clip_norm": 1.0})
    with pytest.raises(JobSpecError, match="must be an integer >= 0"):
        dataclasses.replace(workspace.job, evaluate_every=-1)


def test_job_init_evaluate_every_with_dp_is_one_line_and_status_2(workspace: Workspace) -> None:
    _, cert = workspace.keys["model-owner"]
    out = workspace.directory / "dp-job.toml"
    args = ["job", "init", "--name", "dp", "--model", str(workspace.model_file), "--model-owner-cert", str(cert)]
    args += ["--owner", f"alice={workspace.keys['alice'][1]}", "--owner", f"bob={workspace.keys['bob'][1]}"]
    args += ["--dp-noise-multiplier", "1.0", "--evaluate-every", "1", "--out", str(out)]

    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: JobSpecError: evaluate_every: a DP job releases no metrics, owners' evaluation figures included"
    )
    assert not out.exists()

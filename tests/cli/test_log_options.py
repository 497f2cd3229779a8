"""`--log-level`, `--log-file`, `--log-json`, and the node's one line per attest, join and refusal."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_harness import Workspace, workspace
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import NotEnrolled
from enclavefl.owner.attested import connect_data_owner
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """The CLI adds a handler to the root logger; take it away again after the test. A fresh process's `enclavefl`
    logger has no level of its own; in this one an earlier test (the demo quiets it) may have set one."""
    root, ours = logging.getLogger(), logging.getLogger("enclavefl")
    before, level, our_level = list(root.handlers), root.level, ours.level
    ours.setLevel(logging.NOTSET)
    yield
    ours.setLevel(our_level)
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def mo_args(ws: Workspace, address: str) -> list[str]:
    key, cert = ws.keys["model-owner"]
    node = ["--node", address, "--job", str(ws.job_file), "--policy", str(ws.policy_file)]
    return [*node, "--key", str(key), "--cert", str(cert)]


def test_the_node_logs_one_line_per_attest_join_and_refusal(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="enclavefl")
    node = workspace.node()
    try:
        connect_data_owner(
            node.address, name="alice", job=workspace.job, policy=workspace.policy,
            credentials=workspace.credentials("alice"),
        )  # fmt: skip
        stranger = OwnerCredentials.generate("mallory")  # not enrolled: attests, then its join is refused
        with pytest.raises(NotEnrolled):
            connect_data_owner(
                node.address, name="alice", job=workspace.job, policy=workspace.policy, credentials=stranger
            )
    finally:
        node.stop(0)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("enclavefl")]
    assert sum(line.startswith("attested: ") for line in lines) == 2
    assert [line for line in lines if line.endswith("joined")] == ["data-owner 'alice' joined"]
    refused = [line for line in lines if line.startswith("refused (NotEnrolled)")]
    assert refused == [
        "refused (NotEnrolled): data-owner 'alice': the join signature does not verify under the enrolled key"
    ]


def test_log_json_and_log_file_write_one_json_object_a_line(
    workspace: Workspace, tmp_path: Path, root_handlers: None
) -> None:
    log_file = tmp_path / "enclavefl.log"
    node = workspace.node()  # in this process: its lines go where the CLI's options say
    try:
        result = runner.invoke(
            app, ["--log-json", "--log-file", str(log_file), "job", "status", *mo_args(workspace, node.address)]
        )
    finally:
        node.stop(0)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert records, "no log line was written"
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert "the model owner joined" in [r["message"] for r in records]
    assert all(r["level"] in ("INFO", "WARNING", "ERROR") for r in records)  # --log-level defaults to info


def test_an_unknown_log_level_is_one_line_and_status_2(root_handlers: None) -> None:
    result = runner.invoke(app, ["--log-level", "loud", "job", "--help"])

    assert result.exit_code == ExitCode.CONFIG
    assert result.output.strip() == "error: --log-level 'loud': choose one of debug, info, warning, error"

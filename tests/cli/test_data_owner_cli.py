"""`enclavefl data-owner`: keygen makes enrollment keys; run trains with an attested node or says what did not match."""

from __future__ import annotations

import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
from node_harness import Workspace, in_threads, numpy_owner, workspace
from safetensors.numpy import save_file
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.jobfile import read_initial_model
from enclavefl.errors import RollbackDetected
from enclavefl.host.node_tee import root_ca_file_name
from enclavefl.owner.data_owner_main import certificate_common_name
from enclavefl.owner.notices import describe_stop
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
SEED_TASK = "enclavefl.demos.seed:SEED_TASK"  # nn.Linear(2, 1): the harness model's schema


def alice_data(ws: Workspace, tensors: dict[str, np.ndarray] | None = None) -> Path:
    path = ws.directory / "alice.safetensors"
    x = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    save_file(tensors if tensors is not None else {"x": x, "y": np.ones((2, 1), np.float32)}, str(path))
    return path


def run_args(ws: Workspace, address: str, *, data: Path, policy: Path | None = None, name: str = "alice") -> list[str]:
    key, cert = ws.keys["alice"]
    return [
        "data-owner",
        "run",
        "--node",
        address,
        "--job",
        str(ws.job_file),
        "--policy",
        str(policy or ws.policy_file),
        "--task",
        SEED_TASK,
        "--data",
        str(data),
        "--key",
        str(key),
        "--cert",
        str(cert),
        "--name",
        name,
        "--connect-timeout",
        "5",
    ]


def test_keygen_writes_a_private_key_and_a_certificate_named_after_the_owner(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data-owner", "keygen", "--name", "carol", "--out", str(tmp_path / "keys")])

    assert result.exit_code == 0, result.output
    key, cert = tmp_path / "keys" / "carol.key", tmp_path / "keys" / "carol.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert certificate_common_name(OwnerCredentials.load(key, cert).certificate_pem) == "carol"


def test_keygen_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    runner.invoke(app, ["data-owner", "keygen", "--name", "carol", "--out", str(tmp_path)])
    before = (tmp_path / "carol.key").read_bytes()

    result = runner.invoke(app, ["data-owner", "keygen", "--name", "carol", "--out", str(tmp_path)])

    assert result.exit_code == 2
    assert (tmp_path / "carol.key").read_bytes() == before


def test_run_trains_every_round_prints_local_losses_and_exits_zero(workspace: Workspace) -> None:
    # prepare: the node holds the initial model already; Bob is a thread, Alice is the CLI
    node = workspace.node(initial_model=read_initial_model(workspace.model_file))
    try:
        bob = next(in_threads(numpy_owner(workspace, node.address, "bob", 0.5)))

        # act
        result = runner.invoke(app, run_args(workspace, node.address, data=alice_data(workspace)))
        bob.join(10)
    finally:
        node.stop(0)

    # assert
    assert result.exit_code == 0, result.output
    assert "INSECURE simulated evidence" in result.output
    assert "[alice] round 1 local losses:" in result.output
    assert "[alice] round 2 local losses:" in result.output
    assert "job finished" in result.output and "receipt chain verified to round 2" in result.output


def test_run_refuses_a_node_whose_mrenclave_differs_and_names_both_values(workspace: Workspace) -> None:
    # prepare: a policy for the same simulated platform pinning other code
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = workspace.policy.simulation_root_ca_der
        assert root is not None
        wrong = AttestationPolicy.strict().allow_mrenclave("cd" * 32).allow_simulation(root)
    policy = workspace.directory / "wrong-policy.toml"
    policy.write_text(wrong.to_toml(simulation_root_ca=root_ca_file_name(root)))
    node = workspace.node()

    # act
    try:
        result = runner.invoke(app, run_args(workspace, node.address, data=alice_data(workspace), policy=policy))
        joined = node.server.authority.refusals
    finally:
        node.stop(0)

    # assert
    assert result.exit_code == 3
    assert "attestation refused, nothing was sent: MrEnclaveMismatch:" in result.output
    assert f"MRENCLAVE {measure_aggregator_code().hex()} is not in the policy's allow-list" in result.output
    assert f"the policy allows MRENCLAVE {'cd' * 32}" in result.output
    assert not joined


def test_run_refuses_a_data_file_without_targets(workspace: Workspace) -> None:
    data = alice_data(workspace, {"x": np.zeros((2, 2), np.float32)})

    result = runner.invoke(app, run_args(workspace, "127.0.0.1:9", data=data))

    assert result.exit_code == 2
    assert "expected exactly the tensors 'x' and 'y', found ['x']" in result.output


def test_run_refuses_a_name_the_job_does_not_enroll(workspace: Workspace) -> None:
    result = runner.invoke(app, run_args(workspace, "127.0.0.1:9", data=alice_data(workspace), name="mallory"))

    assert result.exit_code == 2
    assert "'mallory' is not a data owner of job 'cli-test'" in result.output


def test_a_rollback_refusal_tells_the_owner_what_the_operator_can_do() -> None:
    text = describe_stop(RollbackDetected("node presented round 1 chain head, this owner already saw round 3 > 1"))

    assert text.startswith("RollbackDetected: node presented round 1 chain head")
    assert "restart the node on its latest state directory" in text
    assert "Do not delete your own state directory" in text


def test_keygen_tells_data_owners_and_the_model_owner_where_their_certificate_goes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data-owner", "keygen", "--name", "model-owner", "--out", str(tmp_path)])

    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"job init --owner model-owner={tmp_path / 'model-owner.pem'}" in said
    assert "the model owner passes its own to `job init --model-owner-cert`" in said


def test_run_refuses_a_pccs_url_that_is_not_http(workspace: Workspace) -> None:
    args = [*run_args(workspace, "127.0.0.1:9", data=alice_data(workspace)), "--pccs-url", "ftp://pccs.example/"]

    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert "--pccs-url" in result.output and "http(s) URL" in result.output

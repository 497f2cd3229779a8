"""`enclavefl job`: init writes a job that commits to the model and owners; submit/watch/status/download drive it."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
from node_harness import Workspace, in_threads, numpy_owner, workspace
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile import load_job, read_initial_model
from enclavefl.host.node_tee import root_ca_file_name
from enclavefl.owner.model_owner_files import verify_receipts_file
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


def mo_args(ws: Workspace, address: str, policy: Path | None = None) -> list[str]:
    key, cert = ws.keys["model-owner"]
    return [
        "--node",
        address,
        "--job",
        str(ws.job_file),
        "--policy",
        str(policy or ws.policy_file),
        "--key",
        str(key),
        "--cert",
        str(cert),
    ]


def test_init_writes_a_job_that_enrolls_the_owners_and_commits_to_the_model(workspace: Workspace) -> None:
    # prepare
    out = workspace.directory / "new-job.toml"
    alice, bob = workspace.keys["alice"][1], workspace.keys["bob"][1]

    # act
    result = runner.invoke(
        app,
        [
            "job",
            "init",
            "--name",
            "trial",
            "--model",
            str(workspace.model_file),
            "--owner",
            f"alice={alice}",
            "--owner",
            f"bob={bob}",
            "--model-owner-cert",
            str(workspace.keys["model-owner"][1]),
            "--rounds",
            "4",
            "--min-contributions",
            "2",
            "--deadline",
            "60",
            "--local-steps",
            "3",
            "--lr",
            "0.05",
            "--out",
            str(out),
        ],
    )

    # assert
    assert result.exit_code == 0, result.output
    job = load_job(out)
    assert [o.name for o in job.data_owners] == ["alice", "bob"]
    assert job.data_owners[0].certificate_pem == alice.read_text().strip() + "\n"
    assert job.initial_model_sha256 == read_initial_model(workspace.model_file).sha256().hex()
    assert (job.rounds, job.min_contributions, job.train.local_steps, job.train.lr) == (4, 2, 3, 0.05)
    assert job.digest().hex() in result.output


def test_init_bounds_the_examples_an_update_may_declare(workspace: Workspace) -> None:
    from enclavefl.core.job import DEFAULT_MAX_EXAMPLES_PER_UPDATE

    alice = workspace.keys["alice"][1]
    base = [
        "job",
        "init",
        "--name",
        "bounded",
        "--model",
        str(workspace.model_file),
        "--owner",
        f"alice={alice}",
        "--model-owner-cert",
        str(workspace.keys["model-owner"][1]),
        "--min-contributions",
        "1",
    ]
    default, bounded = workspace.directory / "default.toml", workspace.directory / "bounded.toml"

    assert runner.invoke(app, [*base, "--out", str(default)]).exit_code == 0
    result = runner.invoke(app, [*base, "--max-examples-per-update", "5000", "--out", str(bounded)])

    assert result.exit_code == 0, result.output
    assert load_job(default).max_examples_per_update == DEFAULT_MAX_EXAMPLES_PER_UPDATE
    assert load_job(bounded).max_examples_per_update == 5000
    assert load_job(bounded).digest() != load_job(default).digest()  # the bound is part of what owners attest


@pytest.mark.parametrize(("value", "count", "fraction"), [("1", 1, None), ("0.5", None, 0.5), ("50%", None, 0.5)])
def test_init_writes_the_cohort_size_as_a_count_or_a_fraction(
    workspace: Workspace, value: str, count: int | None, fraction: float | None
) -> None:
    alice, bob = workspace.keys["alice"][1], workspace.keys["bob"][1]
    out = workspace.directory / "cohort.toml"
    base = [
        "job",
        "init",
        "--name",
        "cohort",
        "--model",
        str(workspace.model_file),
        "--owner",
        f"alice={alice}",
        "--owner",
        f"bob={bob}",
        "--model-owner-cert",
        str(workspace.keys["model-owner"][1]),
        "--min-contributions",
        "1",
    ]

    result = runner.invoke(app, [*base, "--clients-per-round", value, "--out", str(out)])

    assert result.exit_code == 0, result.output
    job = load_job(out)
    assert (job.clients_per_round, job.fraction_per_round, job.cohort_size) == (count, fraction, 1)
    refused = runner.invoke(app, [*base, "--clients-per-round", "3", "--out", str(out), "--force"])
    assert refused.exit_code == ExitCode.CONFIG
    assert "clients_per_round: 3 per round exceeds the 2 enrolled data owners" in refused.output


@pytest.mark.parametrize("dp_flags", [["--dp-epsilon", "4.0"], ["--dp-noise-multiplier", "1.5"]])
def test_init_with_dp_writes_an_unweighted_job_whose_schedule_owners_accept(
    workspace: Workspace, dp_flags: list[str]
) -> None:
    from enclavefl.privacy.epsilon import verify_epsilon_schedule
    from enclavefl.privacy.params import DpParams

    out = workspace.directory / "dp-job.toml"
    alice, bob = workspace.keys["alice"][1], workspace.keys["bob"][1]

    result = runner.invoke(
        app,
        [
            "job",
            "init",
            "--name",
            "dp-trial",
            "--model",
            str(workspace.model_file),
            "--owner",
            f"alice={alice}",
            "--owner",
            f"bob={bob}",
            "--model-owner-cert",
            str(workspace.keys["model-owner"][1]),
            "--rounds",
            "5",
            "--out",
            str(out),
            *dp_flags,
        ],
    )

    assert result.exit_code == 0, result.output
    job = load_job(out)
    assert job.digest().hex() in result.output  # the file loads back to the digest it announced
    assert job.strategy.params == {"weighted": False}
    dp = DpParams.from_mapping(job.dp or {})
    assert len(dp.epsilon_schedule) == 5
    verify_epsilon_schedule(job)  # every data owner runs this before attesting; raises if understated
    if dp_flags[0] == "--dp-epsilon":
        assert dp.epsilon_schedule[-1] <= 4.0 and dp.epsilon_budget == 4.0


def init_args(ws: Workspace, *extra: str) -> list[str]:
    alice, bob = ws.keys["alice"][1], ws.keys["bob"][1]
    return [
        "job",
        "init",
        "--name",
        "robust",
        "--model",
        str(ws.model_file),
        "--owner",
        f"alice={alice}",
        "--owner",
        f"bob={bob}",
        "--model-owner-cert",
        str(ws.keys["model-owner"][1]),
        "--out",
        str(ws.directory / "robust.toml"),
        *extra,
    ]


@pytest.mark.parametrize(
    ("strategy", "params"), [("median", []), ("krum", ["--param", "byzantine=0"])], ids=["median", "krum"]
)
def test_init_refuses_a_rule_that_releases_one_owners_values_and_says_why(
    workspace: Workspace, strategy: str, params: list[str]
) -> None:
    result = runner.invoke(app, init_args(workspace, "--min-contributions", "2", "--strategy", strategy, *params))

    assert result.exit_code == 2
    assert "ReleaseBelowK" in result.output and "fewer than K = 2" in result.output
    assert not (workspace.directory / "robust.toml").exists()


def test_init_writes_a_centered_clipping_job_with_tau_in_its_digest(workspace: Workspace) -> None:
    result = runner.invoke(app, init_args(workspace, "--strategy", "centered_clipping", "--param", "tau=0.5"))

    assert result.exit_code == 0, result.output
    job = load_job(workspace.directory / "robust.toml")
    assert (job.strategy.name, dict(job.strategy.params)) == ("centered_clipping", {"tau": 0.5})


def test_init_refuses_an_unknown_strategy_parameter(workspace: Workspace) -> None:
    result = runner.invoke(
        app, init_args(workspace, "--strategy", "centered_clipping", "--param", "tau=0.5", "--param", "beta=1")
    )

    assert result.exit_code == 2 and "does not take beta" in result.output


def test_init_refuses_an_owner_given_without_a_certificate(workspace: Workspace) -> None:
    cert = str(workspace.keys["model-owner"][1])
    args = ["--name", "x", "--model", str(workspace.model_file), "--owner", "alice", "--model-owner-cert", cert]
    result = runner.invoke(app, ["job", "init", *args])

    assert result.exit_code == 2
    assert "--owner 'alice': expected NAME=CERTIFICATE.pem" in result.output


def test_submit_watch_status_and_download_drive_a_job_to_a_verified_model(workspace: Workspace) -> None:
    # prepare: a node in this process and two data owners in threads
    node = workspace.node()
    try:
        threads = list(in_threads(*(numpy_owner(workspace, node.address, n, v) for n, v in (("alice", 1), ("bob", 3)))))
        out = workspace.directory / "final.safetensors"

        # act
        submitted = runner.invoke(
            app, ["job", "submit", *mo_args(workspace, node.address), "--model", str(workspace.model_file)]
        )
        watched = runner.invoke(app, ["job", "watch", *mo_args(workspace, node.address)])
        status = runner.invoke(app, ["job", "status", *mo_args(workspace, node.address)])
        downloaded = runner.invoke(app, ["job", "download", *mo_args(workspace, node.address), "--out", str(out)])
        for thread in threads:
            thread.join(10)
    finally:
        node.stop(0)

    # assert
    assert submitted.exit_code == 0, submitted.output
    assert watched.exit_code == 0, watched.output
    assert "round 2/2 closed: 2 contributions" in watched.output
    assert "job finished" in status.output
    assert downloaded.exit_code == 0, downloaded.output
    final = read_initial_model(out)
    assert float(final["weight"][0, 0]) == pytest.approx(2.0)  # plain mean of 1 and 3
    receipts = verify_receipts_file(out.with_suffix(".receipts.json"), job_digest=workspace.job.digest(), final=final)
    assert len(receipts) == 2
    said = " ".join(downloaded.output.split())
    assert f"file sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in said  # what sha256sum prints
    assert f"weights digest {final.sha256().hex()}" in said  # what the last receipt signs


def test_status_refuses_a_node_whose_mrenclave_the_policy_does_not_pin(workspace: Workspace) -> None:
    # prepare: same simulated platform, another measurement
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
        result = runner.invoke(app, ["job", "status", *mo_args(workspace, node.address, policy)])
    finally:
        node.stop(0)

    # assert
    assert result.exit_code == 3
    assert "attestation refused, nothing was sent: MrEnclaveMismatch: MRENCLAVE" in result.output


def test_state_remembers_the_chain_and_refuses_a_node_behind_it(workspace: Workspace) -> None:
    import json

    # prepare: a finished 2-round job, then a receipt memory that has seen a round 3 of this job
    node = workspace.node()
    state = workspace.directory / "mo-state"
    try:
        threads = list(in_threads(*(numpy_owner(workspace, node.address, n, v) for n, v in (("alice", 1), ("bob", 3)))))
        runner.invoke(app, ["job", "submit", *mo_args(workspace, node.address), "--model", str(workspace.model_file)])
        runner.invoke(app, ["job", "watch", *mo_args(workspace, node.address)])
        for thread in threads:
            thread.join(10)

        # act
        first = runner.invoke(app, ["job", "status", *mo_args(workspace, node.address), "--state", str(state)])
        again = runner.invoke(app, ["job", "status", *mo_args(workspace, node.address), "--state", str(state)])
        (memory,) = state.glob("receipts-*.json")
        saved = json.loads(memory.read_text())
        remembered = sorted(saved["seen"])
        saved["seen"]["3"] = "ab" * 32
        memory.write_text(json.dumps(saved))
        behind = runner.invoke(app, ["job", "status", *mo_args(workspace, node.address), "--state", str(state)])
    finally:
        node.stop(0)

    # assert
    assert first.exit_code == 0, first.output
    assert remembered == ["1", "2"]
    assert again.exit_code == 0, again.output
    assert behind.exit_code == ExitCode.REFUSED, behind.output
    assert "RollbackDetected" in behind.output
    said = " ".join(behind.output.split())
    assert "What the operator can do: restart the node on its latest state directory" in said
    assert "the model owner writes a new job spec" in said

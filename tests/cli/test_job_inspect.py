"""`enclavefl job inspect`: what a data owner consents to, in one screen, from the job file and the verified node."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import pytest
from node_harness import Workspace, workspace
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.jobfile_write import dump_job
from enclavefl.errors import SitePolicyRefused
from enclavefl.host.node_tee import root_ca_file_name
from enclavefl.owner.consent import consent_summary
from enclavefl.owner.consent_site import site_policy_rows
from enclavefl.owner.ledger import PrivacyLedger
from enclavefl.owner.site_policy import SitePolicy, certificate_fingerprint, job_epsilon
from enclavefl.privacy.epsilon import dp_params
from enclavefl.privacy.params import DpParams
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


def shown(output: str, label: str) -> str:
    """The value printed after `label` on its line of the summary."""
    match = re.search(rf"^  {re.escape(label)}\s+(.+?)(\s+\[(ok|REFUSED)\])?$", output, flags=re.M)
    assert match is not None, f"{label!r} not in:\n{output}"
    return match.group(1)


def dp_job(ws: Workspace, *, rounds: int = 4) -> Workspace:
    dp = dp_params(clip_norm=0.5, noise_multiplier=1.2, delta=1e-5, rounds=rounds).to_mapping()
    return ws.with_job(dp=dp, rounds=rounds, strategy=dataclasses.replace(ws.job.strategy, params={"weighted": False}))


def test_inspect_shows_the_jobs_commitments_as_the_job_file_states_them(workspace: Workspace) -> None:
    ws = dp_job(workspace)

    result = runner.invoke(app, ["job", "inspect", "--job", str(ws.job_file)], terminal_width=200)

    assert result.exit_code == 0, result.output
    job = ws.job
    dp = DpParams.from_mapping(job.dp or {})
    assert shown(result.output, "job digest") == job.digest().hex()
    assert shown(result.output, "rounds") == str(job.rounds)
    assert shown(result.output, "K (fewest updates in any released value)") == str(job.min_contributions)
    assert shown(result.output, "attempts per round") == str(job.max_round_attempts)
    assert shown(result.output, "strategy") == "fedavg"
    assert shown(result.output, "epsilon of one round") == f"{dp.epsilon_schedule[0]:.4g}"
    assert shown(result.output, "epsilon of the whole job") == f"{job_epsilon(dp):.4g}"
    assert shown(result.output, "clipping: L2 bound on each update's delta") == "0.5"
    assert shown(result.output, "accountant") == "rdp"
    assert shown(result.output, "parameters") == "3"  # Linear(2, 1): 2 weights and a bias
    assert shown(result.output, "initial model weights digest") == job.initial_model_sha256
    for name in ("alice", "bob"):
        fingerprint = certificate_fingerprint(ws.keys[name][1].read_text())
        assert shown(result.output, f"data owner {name}") == f"CN={name} sha256:{fingerprint}"
    assert "Attested enclave" not in result.output  # nothing attested, nothing claimed


def test_inspect_shows_each_site_policy_limit_and_exits_5_when_one_refuses(workspace: Workspace) -> None:
    site = workspace.directory / "site.toml"
    site.write_text("min_contributions = 3\nmax_rounds = 10\nrequire_dp = false\n")

    result = runner.invoke(
        app, ["job", "inspect", "--job", str(workspace.job_file), "--site-policy", str(site)], terminal_width=200
    )

    assert result.exit_code == ExitCode.SITE_POLICY_REFUSED, result.output
    assert re.search(r"^  min_contributions\s+job K = 2; limit K >= 3  \[REFUSED\]$", result.output, flags=re.M)
    assert re.search(r"^  max_rounds\s+job rounds 2; limit at most 10  \[ok\]$", result.output, flags=re.M)
    assert "your own limits refuse this job (min_contributions)" in result.output


@pytest.mark.parametrize(
    "limits",
    [
        {"min_contributions": 3},
        {"max_rounds": 1},
        {"require_dp": True},
        {"max_local_steps": 0},
        {"max_model_bytes": 4},
        {"strategies": ["trimmed_mean"]},
        {"model_owners": ["00" * 32]},
        {"allow_simulated_enclave": False},
    ],
)
def test_the_rows_refuse_exactly_the_field_the_site_policys_own_check_refuses(
    workspace: Workspace, limits: dict[str, object]
) -> None:
    site = SitePolicy.from_mapping({"allow_simulated_enclave": True, **limits})

    with pytest.raises(SitePolicyRefused) as refused:
        site.check_job(workspace.job, workspace.policy)  # the workspace's policy accepts its simulated enclave
    rows = site_policy_rows(workspace.job, site, workspace.policy)

    assert [r.key for r in rows if r.verdict == "refused"] == [refused.value.field]


def test_inspect_reads_the_ledger_before_and_after_without_creating_one(workspace: Workspace) -> None:
    ws = dp_job(workspace)
    state = ws.directory / "state"
    other = dataclasses.replace(ws.job, name="earlier")
    site = SitePolicy(lifetime_epsilon=1000.0)
    PrivacyLedger.open(state).charge_job(other, site)
    missing = ws.directory / "no-state-here"

    result = runner.invoke(app, ["job", "inspect", "--job", str(ws.job_file), "--state", str(state)])
    absent = runner.invoke(app, ["job", "inspect", "--job", str(ws.job_file), "--state", str(missing)])

    assert result.exit_code == 0, result.output
    ledger = PrivacyLedger.open(state)
    assert shown(result.output, "lifetime epsilon before this job") == f"{ledger.spent(SitePolicy()):.4g}"
    assert shown(result.output, "lifetime epsilon after this job") == f"{ledger.spent(SitePolicy(), extra=ws.job):.4g}"
    assert absent.exit_code == 0, absent.output
    assert "holds no privacy ledger yet" in absent.output
    assert not missing.exists()


def test_inspect_attests_the_node_and_decodes_its_evidence_without_joining(workspace: Workspace) -> None:
    node = workspace.node()
    try:
        result = runner.invoke(
            app,
            [
                "job",
                "inspect",
                "--job",
                str(workspace.job_file),
                "--policy",
                str(workspace.policy_file),
                "--node",
                node.address,
            ],
            terminal_width=200,
        )
        joined = node.node_status().job_state.value
    finally:
        node.stop(0)

    assert result.exit_code == 0, result.output
    assert shown(result.output, "MRENCLAVE (the code)") == measure_aggregator_code().hex()
    assert shown(result.output, "TEE") == "SGX (INSECURE simulation)"
    assert shown(result.output, "debug enclave") == "no"
    assert shown(result.output, "TCB status") == "UpToDate"
    assert shown(result.output, "job digest bound") == f"{workspace.job.digest().hex()} = this job"
    assert joined == "awaiting-model"  # inspecting sent a nonce; no model, no update, no join
    assert "WARNING: your policy accepts INSECURE simulated enclaves" in result.output


def test_inspect_with_a_policy_that_refuses_the_node_exits_3_and_shows_no_evidence(workspace: Workspace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = workspace.policy.simulation_root_ca_der
        assert root is not None
        wrong = AttestationPolicy.strict().allow_mrenclave("cd" * 32).allow_simulation(root)
    policy = workspace.directory / "wrong-policy.toml"
    policy.write_text(wrong.to_toml(simulation_root_ca=root_ca_file_name(root)))
    node = workspace.node()
    try:
        result = runner.invoke(
            app, ["job", "inspect", "--job", str(workspace.job_file), "--policy", str(policy), "--node", node.address]
        )
    finally:
        node.stop(0)

    assert result.exit_code == ExitCode.ATTESTATION_REFUSED
    assert "attestation refused: MrEnclaveMismatch" in result.output
    assert "MRENCLAVE (the code)" not in result.output


def test_inspect_needs_a_policy_to_show_evidence(workspace: Workspace) -> None:
    result = runner.invoke(app, ["job", "inspect", "--job", str(workspace.job_file), "--node", "127.0.0.1:1"])

    assert result.exit_code == ExitCode.CONFIG
    assert result.output.strip().splitlines()[-1].startswith("error: ConfigError: --policy:")


def test_the_summary_of_a_job_without_certificates_says_nobody_can_act(workspace: Workspace, tmp_path: Path) -> None:
    job = dataclasses.replace(workspace.job, model_owner_certificate_pem="")
    (tmp_path / "job.toml").write_text(dump_job(job))

    summary = consent_summary(job)

    assert summary.value("parties", "model_owner") == "no certificate (nobody can act as this party)"

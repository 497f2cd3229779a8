"""A policy for another simulated platform: a refusal that names the root, and `node policy` keeps both roots."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import QuoteVerificationError, SimulationRootMismatch
from enclavefl.host.node_tee import root_ca_file_name
from enclavefl.tee.insecure import InsecureSimulationBackend, SimulatedPlatform, measure_aggregator_code
from enclavefl.tee.verify.claims import verify_claims, verify_evidence
from enclavefl.tee.verify.policy_file import load_policy

pytestmark = pytest.mark.filterwarnings("ignore")
NOW = 1_790_000_000
runner = CliRunner()


def _evidence(platform: SimulatedPlatform, mrenclave: bytes | None = None) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backend = InsecureSimulationBackend(platform, clock=lambda: NOW, mrenclave=mrenclave)
    return backend.evidence(bytes(64))


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    a, b = tmp_path_factory.mktemp("platform-a"), tmp_path_factory.mktemp("platform-b")
    SimulatedPlatform.create(a, now=NOW)
    SimulatedPlatform.create(b, now=NOW)
    return a, b


def test_a_quote_from_another_platform_is_refused_as_a_root_mismatch(platforms: tuple[Path, Path]) -> None:
    node_platform, other = (SimulatedPlatform.load_or_create(p) for p in platforms)
    evidence = _evidence(node_platform)

    with pytest.raises(SimulationRootMismatch) as caught:
        verify_claims(evidence, now=NOW, simulation_root_ca_der=other.root_ca_der)  # type: ignore[arg-type]

    assert "this policy's simulation root is not the one that signed the quote" in str(caught.value)
    assert isinstance(caught.value, QuoteVerificationError)


def test_the_right_root_still_verifies(platforms: tuple[Path, Path]) -> None:
    platform = SimulatedPlatform.load_or_create(platforms[0])

    claims = verify_claims(_evidence(platform), now=NOW, simulation_root_ca_der=platform.root_ca_der)  # type: ignore[arg-type]

    assert claims.simulated


def test_node_policy_for_two_platforms_in_one_directory_keeps_both_policies_working(
    platforms: tuple[Path, Path], tmp_path: Path
) -> None:
    # prepare / act: the trap of the issue: two policies written into one directory
    first = runner.invoke(app, ["node", "policy", "--platform-dir", str(platforms[0]), "--out", f"{tmp_path}/a.toml"])
    second = runner.invoke(app, ["node", "policy", "--platform-dir", str(platforms[1]), "--out", f"{tmp_path}/b.toml"])

    # assert: each policy still accepts its own platform's node (the first root was not overwritten)
    assert first.exit_code == ExitCode.OK and second.exit_code == ExitCode.OK, first.output + second.output
    mrenclave = measure_aggregator_code()
    for platform_dir, policy_file in ((platforms[0], "a.toml"), (platforms[1], "b.toml")):
        policy = load_policy(tmp_path / policy_file)
        evidence = _evidence(SimulatedPlatform.load_or_create(platform_dir), mrenclave=mrenclave)
        verify_evidence(evidence, policy=policy, now=NOW)  # type: ignore[arg-type]
    assert len(list(tmp_path.glob("simulation_root_ca-*.pem"))) == 2
    root = SimulatedPlatform.load_or_create(platforms[0]).root_ca_der
    assert f"wrote {tmp_path / 'a.toml'} and {tmp_path / root_ca_file_name(root)}" in " ".join(first.output.split())


def test_node_policy_refuses_to_replace_a_policy_for_another_platform(
    platforms: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "policy.toml"
    assert runner.invoke(app, ["node", "policy", "--platform-dir", str(platforms[0]), "--out", str(out)]).exit_code == 0
    before = out.read_text()

    again = runner.invoke(app, ["node", "policy", "--platform-dir", str(platforms[0]), "--out", str(out)])
    other = runner.invoke(app, ["node", "policy", "--platform-dir", str(platforms[1]), "--out", str(out)])

    assert again.exit_code == ExitCode.OK  # the same platform: rewriting is harmless
    assert other.exit_code == ExitCode.CONFIG
    assert "already holds a policy for another simulated platform" in other.output
    assert out.read_text() == before

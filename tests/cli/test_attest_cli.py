"""`enclavefl attest verify` on the real vectors: exit status 0 only when the policy accepts."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclavefl.cli.attest import app
from enclavefl.core.exit_codes import ExitCode

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "phala-dcap-qvl"
SGX_QUOTE = VECTORS / "sgx_quote"
SGX_COLLATERAL = VECTORS / "sgx_quote_collateral.json"
SGX_NOW = "1752919277"
FRESH_NOW = str(1752919277 - 27 * 86400)  # the vector's collateral 3 days old: within the default 7-day age limit
SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"

runner = CliRunner()

pytestmark = pytest.mark.filterwarnings("ignore::enclavefl.tee.verify.policy.InsecurePolicyWarning")


def _policy_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(f'mrenclave = ["{SGX_MRENCLAVE}"]\n{body}')
    return path


def _verify(*extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", str(SGX_QUOTE), "--collateral", str(SGX_COLLATERAL), *extra])
    return result.exit_code, result.output


def test_without_a_policy_claims_are_shown_and_nothing_is_accepted() -> None:
    code, output = _verify("--now", SGX_NOW)

    assert code == ExitCode.NO_VERDICT
    assert "no policy given: claims verified, nothing accepted" in output
    assert "ConfigurationAndSWHardeningNeeded" in output
    assert SGX_MRENCLAVE[:40] in output


def test_policy_with_the_opt_ins_accepts_with_exit_zero(tmp_path: Path) -> None:
    policy = _policy_file(
        tmp_path,
        "allow_hw_config_needed = true\nallow_sw_hardening_needed = true\n"
        'accepted_advisories = ["INTEL-SA-00289", "INTEL-SA-00615"]\n',
    )

    code, output = _verify("--now", FRESH_NOW, "--policy", str(policy))
    stale_code, stale_output = _verify("--now", SGX_NOW, "--policy", str(policy))  # 30 days old, unexpired

    assert code == 0
    assert "ACCEPTED by the policy" in output
    assert stale_code != 0 and "CollateralTooOld" in stale_output


def test_default_policy_refuses_with_the_reason(tmp_path: Path) -> None:
    code, output = _verify("--now", SGX_NOW, "--policy", str(_policy_file(tmp_path, "")))

    assert code == ExitCode.ATTESTATION_REFUSED
    assert "REFUSED: TcbStatusRefused: TCB status ConfigurationAndSWHardeningNeeded is refused" in output
    assert "tcb_status" in output  # the verified claims are still shown


def test_expired_collateral_is_refused_at_the_default_time(tmp_path: Path) -> None:
    code, output = _verify("--policy", str(_policy_file(tmp_path, "")))

    assert code == ExitCode.ATTESTATION_REFUSED
    assert "REFUSED: CollateralExpired" in output


def test_json_output_carries_claims_and_error() -> None:
    code, output = _verify("--now", "1795000000", "--json")

    doc = json.loads(output)
    assert code == ExitCode.ATTESTATION_REFUSED
    assert doc["verified"] is False and doc["accepted"] is False
    assert doc["error"]["type"] == "CollateralExpired"


def test_json_output_of_verified_claims() -> None:
    code, output = _verify("--now", SGX_NOW, "--json")

    doc = json.loads(output)
    assert code == ExitCode.NO_VERDICT
    assert doc["claims"]["mrenclave"] == SGX_MRENCLAVE
    assert doc["claims"]["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]


def test_bad_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _verify("--now", SGX_NOW, "--policy", str(_policy_file(tmp_path, "allow_everything = true\n")))

    assert code == ExitCode.CONFIG
    assert "allow_everything" in output


def test_missing_quote_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", str(tmp_path / "nope"), "--collateral", str(SGX_COLLATERAL)])

    assert result.exit_code == 2


def test_bytes_that_are_not_a_quote_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "quote.bin"
    garbage.write_bytes(b"\x03\x00" + b"\x00" * 60)

    result = runner.invoke(app, ["verify", str(garbage), "--collateral", str(SGX_COLLATERAL)])

    assert result.exit_code == ExitCode.ATTESTATION_REFUSED
    assert "REFUSED: QuoteFormatError: quote too short" in result.output


@pytest.mark.filterwarnings("ignore::enclavefl.tee.insecure._warnings.InsecureSimulationWarning")
def test_simulated_quote_is_accepted_only_by_a_policy_allowing_simulation(tmp_path: Path) -> None:
    from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform

    now = 1_800_000_000
    platform = SimulatedPlatform.create(tmp_path / "platform", now=now)
    evidence = InsecureSimulationBackend(platform, mrenclave=bytes(32), clock=lambda: now).evidence(bytes(64))
    (tmp_path / "q.bin").write_bytes(evidence.quote)
    (tmp_path / "c.json").write_text(evidence.collateral_json)
    (tmp_path / "root.der").write_bytes(platform.root_ca_der)
    plain = tmp_path / "plain.toml"
    plain.write_text(f'mrenclave = ["{"00" * 32}"]\n')
    allowing = tmp_path / "sim.toml"
    allowing.write_text(f'mrenclave = ["{"00" * 32}"]\nallow_simulation = true\nsimulation_root_ca = "root.der"\n')
    args = ["verify", str(tmp_path / "q.bin"), "--collateral", str(tmp_path / "c.json"), "--now", str(now + 60)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refused = runner.invoke(app, [*args, "--policy", str(plain)])
        accepted = runner.invoke(app, [*args, "--policy", str(allowing)])

    assert refused.exit_code == ExitCode.ATTESTATION_REFUSED
    assert "SimulationNotAllowed" in refused.output
    assert accepted.exit_code == 0
    assert "INSECURE simulated evidence" in accepted.output

"""Auditors' attestation API on the real dcap-qvl vectors: claims verified, the policy's verdict an error leaf."""

from __future__ import annotations

from pathlib import Path

import pytest

import enclavefl
from enclavefl.errors import PolicyViolation, QuoteFormatError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "phala-dcap-qvl"
QUOTE = (VECTORS / "sgx_quote").read_bytes()
COLLATERAL = (VECTORS / "sgx_quote_collateral.json").read_text()
NOW = 1752919277 - 27 * 86400  # the vector's collateral 3 days old (the default policy refuses it older than 7)
MRENCLAVE = bytes.fromhex("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb")

pytestmark = pytest.mark.filterwarnings("ignore::enclavefl.tee.verify.policy.InsecurePolicyWarning")


def accepting_policy(tmp_path: Path) -> enclavefl.AttestationPolicy:
    path = tmp_path / "policy.toml"
    path.write_text(
        f'mrenclave = ["{MRENCLAVE.hex()}"]\nallow_hw_config_needed = true\nallow_sw_hardening_needed = true\n'
        'accepted_advisories = ["INTEL-SA-00289", "INTEL-SA-00615"]\n'
    )
    return enclavefl.load_policy(path)


def test_verify_quote_returns_the_claims_the_policy_accepts(tmp_path: Path) -> None:
    claims = enclavefl.verify_quote(QUOTE, COLLATERAL, policy=accepting_policy(tmp_path), now=NOW)
    assert claims.mrenclave == MRENCLAVE and not claims.simulated


def test_the_default_policy_refuses_with_a_policy_violation_leaf() -> None:
    policy = enclavefl.AttestationPolicy.strict().allow_mrenclave(MRENCLAVE)
    with pytest.raises(PolicyViolation):
        enclavefl.verify_quote(QUOTE, COLLATERAL, policy=policy, now=NOW)
    verdict = enclavefl.examine_quote(QUOTE, COLLATERAL, policy=policy, now=NOW)
    assert not verdict.accepted and isinstance(verdict.error, PolicyViolation)
    assert verdict.claims is not None and verdict.claims.mrenclave == MRENCLAVE  # shown even when refused


def test_without_a_policy_nothing_is_accepted() -> None:
    verdict = enclavefl.examine_quote(QUOTE, COLLATERAL, policy=None, now=NOW)
    assert verdict.claims is not None and verdict.error is None and not verdict.accepted


def test_a_truncated_quote_is_a_refusal_not_a_crash() -> None:
    verdict = enclavefl.examine_quote(QUOTE[:40], COLLATERAL, policy=None, now=NOW)
    assert verdict.claims is None and isinstance(verdict.error, QuoteFormatError)
    with pytest.raises(QuoteFormatError):
        enclavefl.verify_quote(QUOTE[:40], COLLATERAL, policy=enclavefl.AttestationPolicy.strict(), now=NOW)

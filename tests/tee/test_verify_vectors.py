"""verify_evidence on the real Intel SGX/TDX vectors: dcap-qvl results, error mapping, policy leaves."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

from enclavefl.errors import (
    AdvisoryRefused,
    CollateralExpired,
    CollateralTooOld,
    IsvProdIdMismatch,
    IsvSvnTooLow,
    MrEnclaveMismatch,
    MrSignerMismatch,
    MrTdMismatch,
    PolicyConfigError,
    QuoteFormatError,
    QuoteVerificationError,
    TcbStatusRefused,
)
from enclavefl.tee.evidence import Evidence, TeeKind
from enclavefl.tee.verify.claims import verify_claims, verify_evidence
from enclavefl.tee.verify.policy import DEFAULT_MAX_COLLATERAL_AGE_SECONDS, AttestationPolicy, InsecurePolicyWarning

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "phala-dcap-qvl"
SGX = Evidence(
    tee=TeeKind.SGX,
    quote=(VECTORS / "sgx_quote").read_bytes(),
    collateral_json=(VECTORS / "sgx_quote_collateral.json").read_text(),
)
TDX = Evidence(
    tee=TeeKind.TDX,
    quote=(VECTORS / "tdx_quote").read_bytes(),
    collateral_json=(VECTORS / "tdx_quote_collateral.json").read_text(),
)
SGX_NOW = 1752919277
TDX_NOW = 1752919234
TODAY = 1795000000
SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
SGX_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
SGX_ADVISORIES = ("INTEL-SA-00289", "INTEL-SA-00615")
# The vectors' verification times are 30 days after their collateral was issued, just before it expires: stale
# but unexpired, which the default policy refuses (7 days). Tests about other checks allow that age explicitly.
VECTOR_AGE_LIMIT = 31 * 86400


def _sgx_policy_with_opt_ins() -> AttestationPolicy:
    return (
        AttestationPolicy.strict()
        .allow_mrenclave(SGX_MRENCLAVE)
        .allow_hw_config_needed()
        .allow_sw_hardening_needed()
        .accept_advisories(SGX_ADVISORIES)
        .max_collateral_age(VECTOR_AGE_LIMIT)
    )


def _any_measurement() -> AttestationPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecurePolicyWarning)
        return AttestationPolicy.strict().allow_any_measurement_insecure().max_collateral_age(VECTOR_AGE_LIMIT)


def _flip(evidence: Evidence, offset: int) -> Evidence:
    raw = bytearray(evidence.quote)
    raw[offset] ^= 0x01
    return Evidence(tee=evidence.tee, quote=bytes(raw), collateral_json=evidence.collateral_json)


# --- claims ------------------------------------------------------------------------------------
def test_sgx_vector_verifies_with_its_known_status_and_advisories() -> None:
    claims = verify_claims(SGX, now=SGX_NOW, simulation_root_ca_der=None)

    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert claims.advisory_ids == SGX_ADVISORIES
    assert claims.mrenclave is not None and claims.mrenclave.hex() == SGX_MRENCLAVE
    assert claims.mrsigner is not None and claims.mrsigner.hex() == SGX_MRSIGNER
    assert (claims.isv_prod_id, claims.isv_svn, claims.debug, claims.simulated) == (0, 0, False, False)
    assert claims.mr_td is None and claims.rtmrs is None
    assert claims.collateral_issued_at == 1750327278  # QE identity issueDate 2025-06-19T10:01:18Z


def test_tdx_vector_verifies_up_to_date_with_td_measurements() -> None:
    claims = verify_claims(TDX, now=TDX_NOW, simulation_root_ca_der=None)

    assert claims.tee is TeeKind.TDX
    assert (claims.tcb_status, claims.advisory_ids) == ("UpToDate", ())
    assert claims.mr_td is not None and claims.mr_td.hex().startswith("91eb2b44d141d4ec")
    assert claims.rtmrs is not None and len(claims.rtmrs) == 4
    assert claims.mrenclave is None


# --- policy on the SGX vector --------------------------------------------------------------------
def test_sgx_vector_is_refused_by_default_for_its_tcb_status() -> None:
    policy = AttestationPolicy.strict().allow_mrenclave(SGX_MRENCLAVE)

    with pytest.raises(TcbStatusRefused, match="allow_hw_config_needed \\+ allow_sw_hardening_needed"):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_sgx_vector_needs_both_hw_config_and_sw_hardening_opt_ins() -> None:
    policy = AttestationPolicy.strict().allow_mrenclave(SGX_MRENCLAVE).allow_hw_config_needed()

    with pytest.raises(TcbStatusRefused, match=r"needs allow_sw_hardening_needed$"):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_sgx_vector_is_refused_for_advisories_not_accepted() -> None:
    policy = (
        AttestationPolicy.strict()
        .allow_mrenclave(SGX_MRENCLAVE)
        .allow_hw_config_needed()
        .allow_sw_hardening_needed()
        .accept_advisories(["INTEL-SA-00289"])
    )

    with pytest.raises(AdvisoryRefused, match="INTEL-SA-00615") as caught:
        verify_evidence(SGX, policy=policy, now=SGX_NOW)
    assert "INTEL-SA-00289" not in str(caught.value)


def test_sgx_vector_is_accepted_with_the_opt_ins_and_advisories() -> None:
    verified = verify_evidence(SGX, policy=_sgx_policy_with_opt_ins(), now=SGX_NOW)

    assert verified.tcb_status == "ConfigurationAndSWHardeningNeeded"


def test_the_default_policy_refuses_the_real_sgx_vector_when_its_collateral_is_stale_but_unexpired() -> None:
    # Intel's collateral is valid for 30 days; a host serving the same bundle all that time would hide a TCB
    # recovery. Same evidence, same opt-ins, only the age limit left at its default:
    policy = dataclasses.replace(
        _sgx_policy_with_opt_ins(), max_collateral_age_seconds=DEFAULT_MAX_COLLATERAL_AGE_SECONDS
    )

    with pytest.raises(CollateralTooOld, match=f"policy allows {DEFAULT_MAX_COLLATERAL_AGE_SECONDS} s"):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)  # issued 30 days before SGX_NOW, expires a second later
    verified = verify_evidence(SGX, policy=policy, now=SGX_NOW - 27 * 86400)  # the same bundle 3 days old
    assert verified.tcb_status == "ConfigurationAndSWHardeningNeeded"


def test_tdx_vector_is_accepted_up_to_date_by_an_any_measurement_policy() -> None:
    verified = verify_evidence(TDX, policy=_any_measurement(), now=TDX_NOW)

    assert verified.tcb_status == "UpToDate"


def test_an_sgx_only_policy_refuses_the_tdx_vector() -> None:
    policy = AttestationPolicy.strict().allow_mrenclave(SGX_MRENCLAVE)

    with pytest.raises(MrTdMismatch, match="names no trust domain"):
        verify_evidence(TDX, policy=policy, now=TDX_NOW)


def test_tdx_vector_is_accepted_by_its_trust_domain_and_refused_by_another_mrtd() -> None:
    claims = verify_claims(TDX, now=TDX_NOW, simulation_root_ca_der=None)
    assert claims.mr_td is not None and claims.rtmrs is not None

    policy = (
        AttestationPolicy.strict().allow_td(mr_td=claims.mr_td, rtmrs=claims.rtmrs).max_collateral_age(VECTOR_AGE_LIMIT)
    )
    verified = verify_evidence(TDX, policy=policy, now=TDX_NOW)

    assert verified.mr_td == claims.mr_td
    with pytest.raises(MrTdMismatch, match="not in the policy's allow-list"):
        other = AttestationPolicy.strict().allow_td(mr_td="22" * 48, rtmrs=claims.rtmrs)
        verify_evidence(TDX, policy=other, now=TDX_NOW)


@pytest.mark.parametrize("register", [0, 3])
def test_the_right_firmware_booting_other_code_is_refused_naming_the_register(register: int) -> None:
    # The attack: an MRTD-only policy accepts any TD that firmware boots; the RTMRs say what it booted.
    claims = verify_claims(TDX, now=TDX_NOW, simulation_root_ca_der=None)
    assert claims.mr_td is not None and claims.rtmrs is not None
    rtmrs = list(claims.rtmrs)
    rtmrs[register] = bytes(b ^ 0xFF for b in rtmrs[register])

    policy = AttestationPolicy.strict().allow_td(mr_td=claims.mr_td, rtmrs=rtmrs)

    with pytest.raises(MrTdMismatch, match=f"RTMR{register} differ from every allowed trust domain"):
        verify_evidence(TDX, policy=policy, now=TDX_NOW)


def test_a_policy_mrconfigid_must_match_when_set() -> None:
    claims = verify_claims(TDX, now=TDX_NOW, simulation_root_ca_der=None)
    assert claims.mr_td is not None and claims.rtmrs is not None and claims.mr_config_id is not None
    other = bytes(b ^ 0x01 for b in claims.mr_config_id)

    matching = (
        AttestationPolicy.strict()
        .allow_td(mr_td=claims.mr_td, rtmrs=claims.rtmrs, mr_config_id=claims.mr_config_id)
        .max_collateral_age(VECTOR_AGE_LIMIT)
    )
    verify_evidence(TDX, policy=matching, now=TDX_NOW)
    with pytest.raises(MrTdMismatch, match="MRCONFIGID"):
        policy = AttestationPolicy.strict().allow_td(mr_td=claims.mr_td, rtmrs=claims.rtmrs, mr_config_id=other)
        verify_evidence(TDX, policy=policy, now=TDX_NOW)


def test_a_tdx_only_policy_refuses_an_sgx_quote() -> None:
    policy = (
        AttestationPolicy.strict().allow_td(mr_td="22" * 48, rtmrs=["33" * 48] * 4)
        .allow_hw_config_needed().allow_sw_hardening_needed()
    )  # fmt: skip

    with pytest.raises(MrEnclaveMismatch, match="only TDX measurements"):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_wrong_mrenclave_is_refused() -> None:
    policy = (
        AttestationPolicy.strict()
        .allow_mrenclave("11" * 32)
        .allow_hw_config_needed()
        .allow_sw_hardening_needed()
        .accept_advisories(SGX_ADVISORIES)
    )

    with pytest.raises(MrEnclaveMismatch, match=SGX_MRENCLAVE):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_wrong_mrsigner_is_refused_even_when_mrenclave_matches() -> None:
    policy = _sgx_policy_with_opt_ins().allow_mrsigner("22" * 32)

    with pytest.raises(MrSignerMismatch, match=SGX_MRSIGNER):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_isv_svn_below_minimum_is_refused() -> None:
    policy = _sgx_policy_with_opt_ins().min_isv_svn(1)

    with pytest.raises(IsvSvnTooLow, match="ISVSVN 0 is below the policy's minimum 1"):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_isv_prod_id_other_than_required_is_refused() -> None:
    policy = _sgx_policy_with_opt_ins().require_isv_prod_id(5)

    with pytest.raises(IsvProdIdMismatch):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_collateral_older_than_the_policys_max_age_is_refused() -> None:
    policy = _sgx_policy_with_opt_ins().max_collateral_age(7 * 24 * 3600)

    with pytest.raises(CollateralTooOld, match="policy allows 604800 s"):
        verify_evidence(SGX, policy=policy, now=SGX_NOW)


def test_collateral_within_max_age_is_accepted() -> None:
    policy = _sgx_policy_with_opt_ins().max_collateral_age(31 * 24 * 3600)

    assert verify_evidence(SGX, policy=policy, now=SGX_NOW).collateral_issued_at is not None


def test_policy_naming_no_measurement_is_a_config_error() -> None:
    with pytest.raises(PolicyConfigError, match="refuse to trust any enclave"):
        verify_evidence(SGX, policy=AttestationPolicy.strict().allow_hw_config_needed(), now=SGX_NOW)


# --- dcap-qvl refusals mapped to precise errors --------------------------------------------------
@pytest.mark.parametrize("evidence", [SGX, TDX], ids=["sgx-vector", "tdx-vector"])
def test_vectors_are_refused_today_as_collateral_expired(evidence: Evidence) -> None:
    with pytest.raises(CollateralExpired, match="CrlExpired"):
        verify_evidence(evidence, policy=_any_measurement(), now=TODAY)


def test_tcb_info_past_next_update_is_collateral_expired() -> None:
    with pytest.raises(CollateralExpired, match="TCBInfo expired"):
        verify_claims(SGX, now=1752923000, simulation_root_ca_der=None)


def test_qe_identity_past_next_update_is_collateral_expired() -> None:
    with pytest.raises(CollateralExpired, match="QE Identity expired"):
        verify_claims(SGX, now=1752920000, simulation_root_ca_der=None)


def test_collateral_not_yet_issued_is_a_verification_error_not_expiry() -> None:
    with pytest.raises(QuoteVerificationError, match="issue date is in the future") as caught:
        verify_claims(SGX, now=1750000000, simulation_root_ca_der=None)
    assert not isinstance(caught.value, CollateralExpired)


@pytest.mark.parametrize(
    ("offset", "fragment"),
    [
        (200, "ISV enclave report signature is invalid"),  # report body (MRSIGNER area)
        (440, "ISV enclave report signature is invalid"),  # ISV signature itself
        (520, "QE report hash mismatch"),  # attestation key no longer hashes into the QE report
        (700, "Signature is invalid for qe_report in quote"),  # QE report body
        (2000, "Failed to verify certificate chain"),  # PCK leaf certificate bytes
    ],
)
def test_flipped_quote_byte_is_refused_with_dcap_qvls_reason(offset: int, fragment: str) -> None:
    with pytest.raises(QuoteVerificationError, match=fragment) as caught:
        verify_evidence(_flip(SGX, offset), policy=_sgx_policy_with_opt_ins(), now=SGX_NOW)
    assert type(caught.value) is QuoteVerificationError


def test_edited_tcb_info_is_refused_for_its_signature() -> None:
    collateral = json.loads(SGX.collateral_json)
    collateral["tcb_info"] = collateral["tcb_info"].replace('"version":3', '"version":4', 1)
    edited = Evidence(tee=TeeKind.SGX, quote=SGX.quote, collateral_json=json.dumps(collateral))

    with pytest.raises(QuoteVerificationError, match="Signature is invalid for tcb_info"):
        verify_claims(edited, now=SGX_NOW, simulation_root_ca_der=None)


def test_collateral_of_another_tee_is_refused() -> None:
    swapped = Evidence(tee=TeeKind.SGX, quote=SGX.quote, collateral_json=TDX.collateral_json)

    with pytest.raises(QuoteVerificationError, match="QE Identity"):
        verify_claims(swapped, now=SGX_NOW, simulation_root_ca_der=None)


def test_evidence_kind_disagreeing_with_the_quote_is_a_format_error() -> None:
    mislabelled = Evidence(tee=TeeKind.TDX, quote=SGX.quote, collateral_json=SGX.collateral_json)

    with pytest.raises(QuoteFormatError, match="evidence says tdx but the quote is a sgx quote"):
        verify_claims(mislabelled, now=SGX_NOW, simulation_root_ca_der=None)


def test_collateral_that_is_not_json_is_a_format_error() -> None:
    broken = Evidence(tee=TeeKind.SGX, quote=SGX.quote, collateral_json="{not json")

    with pytest.raises(QuoteFormatError, match="QuoteCollateralV3"):
        verify_claims(broken, now=SGX_NOW, simulation_root_ca_der=None)

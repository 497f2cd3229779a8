"""AttestationPolicy: the builder, the RA-TLS status table, advisories, age, and its TOML form."""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from enclavefl.errors import (
    AdvisoryRefused,
    CollateralTooOld,
    DebugEnclaveRefused,
    IsvProdIdMismatch,
    MrEnclaveMismatch,
    MrSignerMismatch,
    PolicyConfigError,
    SimulationNotAllowed,
    TcbStatusRefused,
)
from enclavefl.tee.evidence import TeeKind
from enclavefl.tee.verify.policy import AttestationPolicy, InsecurePolicyWarning
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.tee.verify.verified import VerifiedEnclave

pytestmark = pytest.mark.filterwarnings("ignore::enclavefl.tee.verify.policy.InsecurePolicyWarning")

MRENCLAVE = bytes(range(32))
MRSIGNER = bytes(range(32, 64))
NOW = 1_800_000_000


def _enclave(**changes: object) -> VerifiedEnclave:
    base = VerifiedEnclave(
        tee=TeeKind.SGX,
        mrenclave=MRENCLAVE,
        mrsigner=MRSIGNER,
        isv_prod_id=3,
        isv_svn=2,
        debug=False,
        tcb_status="UpToDate",
        advisory_ids=(),
        report_data=bytes(64),
        mr_td=None,
        rtmrs=None,
        simulated=False,
        collateral_issued_at=NOW - 3600,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _accepting() -> AttestationPolicy:
    return AttestationPolicy.strict().allow_mrenclave(MRENCLAVE.hex())


def _root_ca_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "enclavefl INSECURE simulation Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


# --- builder -----------------------------------------------------------------------------------
def test_builder_returns_a_new_policy_and_leaves_the_old_one_unchanged() -> None:
    strict = AttestationPolicy.strict()

    loosened = strict.allow_hw_config_needed()

    assert strict.accepts_hw_config_needed is False
    assert loosened.accepts_hw_config_needed is True


def test_mrenclave_accepts_hex_and_bytes_alike() -> None:
    assert AttestationPolicy.strict().allow_mrenclave(MRENCLAVE) == _accepting()


@pytest.mark.parametrize("bad", ["zz" * 32, "ab" * 31, b"\x00" * 33])
def test_malformed_measurement_is_a_config_error(bad: str | bytes) -> None:
    with pytest.raises(PolicyConfigError, match="mrsigner"):
        AttestationPolicy.strict().allow_mrsigner(bad)


@pytest.mark.parametrize("bad", [-1, 65536, True])
def test_isv_values_outside_u16_are_config_errors(bad: int) -> None:
    with pytest.raises(PolicyConfigError, match="min_isv_svn"):
        AttestationPolicy.strict().min_isv_svn(bad)


def test_insecure_opt_ins_warn() -> None:
    with pytest.warns(InsecurePolicyWarning, match="debug enclaves"):
        AttestationPolicy.strict().allow_debug_enclave_insecure()
    with pytest.warns(InsecurePolicyWarning, match="out-of-date"):
        AttestationPolicy.strict().allow_outdated_tcb_insecure()
    with pytest.warns(InsecurePolicyWarning, match="simulated evidence"):
        AttestationPolicy.strict().allow_simulation(_root_ca_der())


def test_plain_opt_ins_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecurePolicyWarning)
        AttestationPolicy.strict().allow_hw_config_needed().allow_sw_hardening_needed()


def test_simulation_root_must_be_a_certificate() -> None:
    with pytest.raises(PolicyConfigError, match="simulation_root_ca"):
        AttestationPolicy.strict().allow_simulation(b"not a certificate")


# --- measurements and flags ----------------------------------------------------------------------
def test_policy_without_measurements_refuses_to_trust_anything() -> None:
    with pytest.raises(PolicyConfigError, match="policy names no MRENCLAVE, MRSIGNER or trust domain"):
        AttestationPolicy.strict().check(_enclave(), now=NOW)


def test_any_measurement_insecure_lifts_the_config_error() -> None:
    AttestationPolicy.strict().allow_any_measurement_insecure().check(_enclave(), now=NOW)


def test_mrsigner_alone_accepts_any_code_from_that_signer() -> None:
    AttestationPolicy.strict().allow_mrsigner(MRSIGNER).check(_enclave(mrenclave=bytes(32)), now=NOW)


def test_both_lists_must_match_when_both_are_given() -> None:
    policy = _accepting().allow_mrsigner(bytes(32))

    with pytest.raises(MrSignerMismatch):
        policy.check(_enclave(), now=NOW)


def test_mrenclave_outside_the_allow_list_is_refused() -> None:
    with pytest.raises(MrEnclaveMismatch):
        _accepting().check(_enclave(mrenclave=bytes(32)), now=NOW)


def test_isv_prod_id_must_equal_the_required_one() -> None:
    _accepting().require_isv_prod_id(3).check(_enclave(), now=NOW)
    with pytest.raises(IsvProdIdMismatch):
        _accepting().require_isv_prod_id(4).check(_enclave(), now=NOW)


def test_debug_enclave_is_refused_unless_insecurely_allowed() -> None:
    with pytest.raises(DebugEnclaveRefused):
        _accepting().check(_enclave(debug=True), now=NOW)
    _accepting().allow_debug_enclave_insecure().check(_enclave(debug=True), now=NOW)


def test_simulated_claims_are_refused_without_allow_simulation() -> None:
    with pytest.raises(SimulationNotAllowed, match="does not allow_simulation"):
        _accepting().check(_enclave(simulated=True), now=NOW)


# --- the RA-TLS status table ---------------------------------------------------------------------
ALL_OPT_INS = ("allow_outdated_tcb_insecure", "allow_hw_config_needed", "allow_sw_hardening_needed")
STATUS_NEEDS = [
    ("UpToDate", ()),
    ("SWHardeningNeeded", ("allow_sw_hardening_needed",)),
    ("ConfigurationNeeded", ("allow_hw_config_needed",)),
    ("ConfigurationAndSWHardeningNeeded", ("allow_hw_config_needed", "allow_sw_hardening_needed")),
    ("OutOfDate", ("allow_outdated_tcb_insecure",)),
    ("OutOfDateConfigurationNeeded", ("allow_outdated_tcb_insecure", "allow_hw_config_needed")),
    ("TDRelaunchAdvised", ("allow_outdated_tcb_insecure",)),
    ("TDRelaunchAdvisedConfigurationNeeded", ("allow_outdated_tcb_insecure", "allow_hw_config_needed")),
]


def _with(opt_ins: tuple[str, ...]) -> AttestationPolicy:
    policy = _accepting()
    for name in opt_ins:
        policy = getattr(policy, name)()
    return policy


@pytest.mark.parametrize(("status", "needs"), STATUS_NEEDS)
def test_status_is_accepted_with_exactly_its_opt_ins(status: str, needs: tuple[str, ...]) -> None:
    _with(needs).check(_enclave(tcb_status=status), now=NOW)


@pytest.mark.parametrize(
    ("status", "needs", "dropped"),
    [(status, needs, dropped) for status, needs in STATUS_NEEDS for dropped in needs],
)
def test_status_is_refused_when_one_opt_in_is_missing(status: str, needs: tuple[str, ...], dropped: str) -> None:
    others = tuple(n for n in ALL_OPT_INS if n != dropped)

    with pytest.raises(TcbStatusRefused, match=dropped):
        _with(others).check(_enclave(tcb_status=status), now=NOW)


@pytest.mark.parametrize("status", ["Revoked", "InvalidSignature", "Unspecified", ""])
def test_revoked_and_unknown_statuses_are_never_accepted(status: str) -> None:
    with pytest.raises(TcbStatusRefused, match="never accepted"):
        _with(ALL_OPT_INS).check(_enclave(tcb_status=status), now=NOW)


# --- advisories and age --------------------------------------------------------------------------
def test_advisories_must_all_be_accepted() -> None:
    claims = _enclave(tcb_status="SWHardeningNeeded", advisory_ids=("INTEL-SA-00615", "INTEL-SA-00657"))
    policy = _accepting().allow_sw_hardening_needed().accept_advisories(["INTEL-SA-00615"])

    with pytest.raises(AdvisoryRefused, match="INTEL-SA-00657"):
        policy.check(claims, now=NOW)
    policy.accept_advisories(["INTEL-SA-00657"]).check(claims, now=NOW)


def test_advisories_on_an_up_to_date_platform_are_checked_too() -> None:
    with pytest.raises(AdvisoryRefused):
        _accepting().check(_enclave(advisory_ids=("INTEL-SA-00999",)), now=NOW)


def test_a_bare_string_is_not_a_list_of_advisories() -> None:
    with pytest.raises(PolicyConfigError, match="accepted_advisories"):
        _accepting().accept_advisories("INTEL-SA-00615")


def test_collateral_age_is_measured_against_now() -> None:
    policy = _accepting().max_collateral_age(7200)

    policy.check(_enclave(collateral_issued_at=NOW - 7200), now=NOW)
    with pytest.raises(CollateralTooOld, match="7201 s"):
        policy.check(_enclave(collateral_issued_at=NOW - 7201), now=NOW)


def test_collateral_of_unknown_age_is_refused_when_a_max_age_is_set() -> None:
    with pytest.raises(CollateralTooOld, match="unknown"):
        _accepting().max_collateral_age(60).check(_enclave(collateral_issued_at=None), now=NOW)


# --- TOML ----------------------------------------------------------------------------------------
def test_toml_round_trip_keeps_every_setting(tmp_path: Path) -> None:
    root = _root_ca_der()
    (tmp_path / "sim-root.der").write_bytes(root)
    policy = (
        _accepting()
        .allow_mrsigner(MRSIGNER)
        .require_isv_prod_id(3)
        .min_isv_svn(2)
        .allow_debug_enclave_insecure()
        .allow_outdated_tcb_insecure()
        .allow_hw_config_needed()
        .allow_sw_hardening_needed()
        .accept_advisories(["INTEL-SA-00615", "INTEL-SA-00657"])
        .max_collateral_age(86400)
        .allow_simulation(root)
    )
    path = tmp_path / "policy.toml"
    path.write_text(policy.to_toml(simulation_root_ca="sim-root.der"))

    assert load_policy(path) == policy


@pytest.mark.parametrize("advisory", ["INTEL-SA-615", "all", "*", "SA-00615", "INTEL-SA-00615,INTEL-SA-00657"])
def test_an_advisory_that_is_not_an_intel_advisory_id_is_refused(tmp_path: Path, advisory: str) -> None:
    # a typo must not silently accept nothing, nor be read as a wildcard
    path = tmp_path / "policy.toml"
    path.write_text(f'mrenclave = ["{MRENCLAVE.hex()}"]\naccepted_advisories = ["{advisory}"]\n')

    with pytest.raises(PolicyConfigError, match="Intel advisory ID"):
        load_policy(path)


def test_an_advisory_id_is_read_whatever_its_case_and_surrounding_spaces(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'mrenclave = ["{MRENCLAVE.hex()}"]\naccepted_advisories = [" intel-sa-00615 "]\n')

    assert load_policy(path).accepted_advisories == frozenset({"INTEL-SA-00615"})


def test_toml_reads_the_simulation_root_as_pem_relative_to_the_policy(tmp_path: Path) -> None:
    root = _root_ca_der()
    pem = x509.load_der_x509_certificate(root).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "sim.pem").write_bytes(pem)
    path = tmp_path / "policy.toml"
    path.write_text(
        f'mrenclave = ["{MRENCLAVE.hex()}"]\nallow_simulation = true\nsimulation_root_ca = "roots/sim.pem"\n'
    )

    assert load_policy(path).simulation_root_ca_der == root


def test_writing_a_simulation_policy_needs_the_roots_path() -> None:
    with pytest.raises(PolicyConfigError, match="simulation_root_ca"):
        _accepting().allow_simulation(_root_ca_der()).to_toml()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('mrenclaves = ["00"]\n', "mrenclaves"),
        ('mrenclave = "00"\n', "mrenclave"),
        ("mrenclave = [1]\n", "mrenclave"),
        ('isv_prod_id = "1"\n', "isv_prod_id"),
        ("min_isv_svn = true\n", "min_isv_svn"),
        ("allow_hw_config_needed = 1\n", "allow_hw_config_needed"),
        ("max_collateral_age_seconds = 0\n", "max_collateral_age_seconds"),
        ("allow_simulation = true\n", "simulation_root_ca"),
        ('simulation_root_ca = "root.der"\n', "allow_simulation"),
        ('allow_simulation = true\nsimulation_root_ca = "missing.der"\n', "missing.der"),
        ('mrsigner = ["abcd"]\n', "mrsigner"),
    ],
)
def test_bad_policy_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)

    with pytest.raises(PolicyConfigError, match=key):
        load_policy(path)


def test_unparseable_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("mrenclave = [\n")

    with pytest.raises(PolicyConfigError, match="cannot read policy"):
        load_policy(path)


def test_trust_domains_round_trip_through_toml(tmp_path: Path) -> None:
    policy = (
        AttestationPolicy.strict()
        .allow_td(mr_td="ab" * 48, rtmrs=["01" * 48, "02" * 48, "03" * 48, "04" * 48])
        .allow_td(mr_td="cd" * 48, rtmrs=["05" * 48] * 4, mr_config_id="06" * 48)
    )
    path = tmp_path / "policy.toml"
    path.write_text(policy.to_toml())

    assert load_policy(path) == policy
    with pytest.raises(PolicyConfigError, match="mr_td: expected 48 bytes"):
        AttestationPolicy.strict().allow_td(mr_td="ab" * 32, rtmrs=["01" * 48] * 4)
    with pytest.raises(PolicyConfigError, match="give all four RTMR values"):
        AttestationPolicy.strict().allow_td(mr_td="ab" * 48, rtmrs=["01" * 48] * 3)


def test_a_policy_file_with_an_mrtd_but_no_rtmrs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('td = [{ mr_td = "' + "ab" * 48 + '" }]\n')

    with pytest.raises(PolicyConfigError, match="td rtmr must list the four RTMR values"):
        load_policy(path)

"""Every way attestation must refuse, end to end on the INSECURE simulation backend.

Each case builds real-format evidence with `InsecureSimulationBackend`, runs the data owner's
checks (verify_evidence, then check_report_data) and expects one precise error leaf.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enclavefl.errors import (
    AdvisoryRefused,
    CollateralExpired,
    DebugEnclaveRefused,
    JobDigestMismatch,
    MrEnclaveMismatch,
    NonceMismatch,
    ReportDataMismatch,
    SimulationNotAllowed,
    SimulationRootMismatch,
    TcbStatusRefused,
    TlsKeyNotBound,
)
from enclavefl.tee.binding import compute_report_data
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.verify.claims import verify_evidence
from enclavefl.tee.verify.policy import AttestationPolicy, InsecurePolicyWarning
from enclavefl.tee.verify.report_data import check_report_data
from enclavefl.tee.verify.verified import VerifiedEnclave

pytestmark = [
    pytest.mark.filterwarnings("ignore::enclavefl.tee.insecure._warnings.InsecureSimulationWarning"),
    pytest.mark.filterwarnings("ignore::enclavefl.tee.verify.policy.InsecurePolicyWarning"),
]

NOW = 1_800_000_000
MRENCLAVE = hashlib.sha256(b"enclavefl aggregator under test").digest()
TLS_SPKI_SHA256 = hashlib.sha256(b"node TLS key").digest()
JOB_DIGEST = hashlib.sha256(b"job spec").digest()
NONCE = bytes(range(32))


@dataclass(frozen=True, slots=True, kw_only=True)
class Platforms:
    first: SimulatedPlatform
    second: SimulatedPlatform


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platforms]:
    base: Path = tmp_path_factory.mktemp("platforms")
    yield Platforms(
        first=SimulatedPlatform.create(base / "first", now=NOW),
        second=SimulatedPlatform.create(base / "second", now=NOW),
    )


def _evidence(platform: SimulatedPlatform, *, report_data: bytes | None = None, **backend: object) -> Evidence:
    options: dict[str, object] = {"mrenclave": MRENCLAVE, "isv_prod_id": 0, "isv_svn": 0}
    options.update(backend)
    sim = InsecureSimulationBackend(platform, clock=lambda: NOW, **options)  # type: ignore[arg-type]
    bound = compute_report_data(tls_spki_sha256=TLS_SPKI_SHA256, job_digest=JOB_DIGEST, nonce=NONCE)
    return sim.evidence(bound if report_data is None else report_data)


def _policy(platform: SimulatedPlatform) -> AttestationPolicy:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecurePolicyWarning)
        return AttestationPolicy.strict().allow_mrenclave(MRENCLAVE).allow_simulation(platform.root_ca_der)


def _data_owner_accepts(
    evidence: Evidence,
    policy: AttestationPolicy,
    *,
    claimed_tls: bytes = TLS_SPKI_SHA256,
    claimed_job: bytes = JOB_DIGEST,
    actual_tls: bytes = TLS_SPKI_SHA256,
    expected_job: bytes = JOB_DIGEST,
    nonce: bytes = NONCE,
    now: int = NOW + 60,
) -> VerifiedEnclave:
    verified = verify_evidence(evidence, policy=policy, now=now)
    check_report_data(
        verified.report_data,
        claimed_tls_spki_sha256=claimed_tls,
        claimed_job_digest=claimed_job,
        actual_tls_spki_sha256=actual_tls,
        expected_job_digest=expected_job,
        nonce=nonce,
    )
    return verified


def test_simulated_evidence_is_accepted_only_as_simulated(platforms: Platforms) -> None:
    verified = _data_owner_accepts(_evidence(platforms.first), _policy(platforms.first))

    assert verified.simulated is True
    assert verified.mrenclave == MRENCLAVE
    assert verified.tcb_status == "UpToDate"


def test_simulated_evidence_is_refused_by_a_policy_without_allow_simulation(platforms: Platforms) -> None:
    policy = AttestationPolicy.strict().allow_mrenclave(MRENCLAVE)

    with pytest.raises(SimulationNotAllowed, match="INSECURE simulation backend; this policy does not"):
        _data_owner_accepts(_evidence(platforms.first), policy)


def test_simulation_refusal_comes_before_any_other_check(platforms: Platforms) -> None:
    expired_and_debug = _evidence(platforms.first, debug=True)

    with pytest.raises(SimulationNotAllowed):
        verify_evidence(expired_and_debug, policy=AttestationPolicy.strict(), now=NOW + 10**9)


def test_evidence_from_another_simulated_platform_is_refused(platforms: Platforms) -> None:
    # refused before dcap-qvl, whose own message would be a CRL parse error that names no root
    with pytest.raises(SimulationRootMismatch, match="this policy's simulation root is not the one that signed"):
        _data_owner_accepts(_evidence(platforms.second), _policy(platforms.first))


def test_other_platforms_quote_with_this_platforms_collateral_is_refused(platforms: Platforms) -> None:
    foreign = _evidence(platforms.second)
    mixed = Evidence(tee=foreign.tee, quote=foreign.quote, collateral_json=_evidence(platforms.first).collateral_json)

    with pytest.raises(SimulationRootMismatch, match="the quote's chain ends at root"):
        _data_owner_accepts(mixed, _policy(platforms.first))


def test_debug_enclave_is_refused(platforms: Platforms) -> None:
    with pytest.raises(DebugEnclaveRefused, match="Debug mode"):
        _data_owner_accepts(_evidence(platforms.first, debug=True), _policy(platforms.first))


def test_debug_enclave_is_refused_even_by_an_insecure_debug_policy(platforms: Platforms) -> None:
    policy = _policy(platforms.first).allow_debug_enclave_insecure()  # dcap-qvl 0.7 refuses regardless

    with pytest.raises(DebugEnclaveRefused):
        _data_owner_accepts(_evidence(platforms.first, debug=True), policy)


def test_out_of_date_platform_is_refused(platforms: Platforms) -> None:
    with pytest.raises(TcbStatusRefused, match="OutOfDate is refused; accepting it needs allow_outdated"):
        _data_owner_accepts(_evidence(platforms.first, tcb_status="OutOfDate"), _policy(platforms.first))


def test_out_of_date_platform_passes_the_insecure_opt_in_but_not_its_advisory(platforms: Platforms) -> None:
    policy = _policy(platforms.first).allow_outdated_tcb_insecure()

    with pytest.raises(AdvisoryRefused, match="INTEL-SA-00828"):
        _data_owner_accepts(_evidence(platforms.first, tcb_status="OutOfDate"), policy)


def test_revoked_platform_is_refused_whatever_the_opt_ins(platforms: Platforms) -> None:
    policy = (
        _policy(platforms.first)
        .allow_outdated_tcb_insecure()
        .allow_hw_config_needed()
        .allow_sw_hardening_needed()
        .accept_advisories(["INTEL-SA-00000"])
    )

    with pytest.raises(TcbStatusRefused, match="Revoked"):
        _data_owner_accepts(_evidence(platforms.first, tcb_status="Revoked"), policy)


def test_sw_hardening_needed_is_accepted_with_its_opt_in_and_advisory(platforms: Platforms) -> None:
    policy = _policy(platforms.first).allow_sw_hardening_needed().accept_advisories(["INTEL-SA-00615"])

    verified = _data_owner_accepts(_evidence(platforms.first, tcb_status="SWHardeningNeeded"), policy)

    assert verified.tcb_status == "SWHardeningNeeded"


def test_other_code_is_refused_for_its_mrenclave(platforms: Platforms) -> None:
    other_code = hashlib.sha256(b"a modified aggregator").digest()

    with pytest.raises(MrEnclaveMismatch, match=other_code.hex()):
        _data_owner_accepts(_evidence(platforms.first, mrenclave=other_code), _policy(platforms.first))


def test_expired_simulated_collateral_is_refused(platforms: Platforms) -> None:
    with pytest.raises(CollateralExpired):
        _data_owner_accepts(_evidence(platforms.first), _policy(platforms.first), now=NOW + 31 * 24 * 3600)


def test_quote_bound_to_another_tls_key_is_refused(platforms: Platforms) -> None:
    attacker_key = hashlib.sha256(b"host's own TLS key").digest()

    with pytest.raises(TlsKeyNotBound):
        _data_owner_accepts(_evidence(platforms.first), _policy(platforms.first), actual_tls=attacker_key)


def test_claims_the_quote_does_not_bind_are_refused(platforms: Platforms) -> None:
    forged_claim = hashlib.sha256(b"host's own TLS key").digest()

    with pytest.raises(ReportDataMismatch, match="claims not bound") as caught:
        _data_owner_accepts(
            _evidence(platforms.first), _policy(platforms.first), claimed_tls=forged_claim, actual_tls=forged_claim
        )
    assert type(caught.value) is ReportDataMismatch


def test_node_running_another_job_is_refused(platforms: Platforms) -> None:
    agreed_job = hashlib.sha256(b"the job the data owner agreed to").digest()

    with pytest.raises(JobDigestMismatch, match=agreed_job.hex()[:16]):
        _data_owner_accepts(_evidence(platforms.first), _policy(platforms.first), expected_job=agreed_job)


def test_replayed_evidence_for_an_old_nonce_is_refused(platforms: Platforms) -> None:
    fresh_nonce = hashlib.sha256(b"this session's nonce").digest()

    with pytest.raises(NonceMismatch, match="replayed or stale"):
        _data_owner_accepts(_evidence(platforms.first), _policy(platforms.first), nonce=fresh_nonce)

"""The simulated platform's evidence goes through dcap-qvl exactly like hardware evidence."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509

from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.evidence import TeeKind
from enclavefl.tee.insecure import (
    SIMULATION_CN_MARKER,
    InsecureSimulationBackend,
    InsecureSimulationWarning,
    SimulatedPlatform,
    measure_aggregator_code,
)

NOW = 1_790_000_000  # 2026-09-21, a fixed `now` for every test
DAY = 86_400
REPORT_DATA = bytes(range(64))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path_factory.mktemp("platform-a"), now=NOW)


@pytest.fixture(scope="module")
def other_platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path_factory.mktemp("platform-b"), now=NOW)


def make_backend(platform: SimulatedPlatform, **kwargs: object) -> InsecureSimulationBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSimulationWarning)
        return InsecureSimulationBackend(platform, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def verify(evidence_quote: bytes, collateral_json: str, root_der: bytes, now: int = NOW) -> object:
    collateral = dcap_qvl.QuoteCollateralV3.from_json(collateral_json)
    return dcap_qvl.verify_with_root_ca(evidence_quote, collateral, root_der, now)


def test_simulated_quote_verifies_up_to_date_under_the_platform_root(platform: SimulatedPlatform) -> None:
    backend = make_backend(platform)

    evidence = backend.evidence(REPORT_DATA)
    report = verify(evidence.quote, evidence.collateral_json, platform.root_ca_der)

    assert report.status == "UpToDate"  # type: ignore[attr-defined]
    assert report.advisory_ids == []  # type: ignore[attr-defined]
    assert evidence.tee is TeeKind.SGX


def test_quote_carries_the_requested_identity_and_report_data(platform: SimulatedPlatform) -> None:
    mrenclave = bytes.fromhex("ab" * 32)
    backend = make_backend(platform, mrenclave=mrenclave, isv_prod_id=7, isv_svn=3)

    quote = backend.evidence(REPORT_DATA).quote
    parsed = dcap_qvl.parse_quote(quote)

    assert parsed.header.version == 3
    assert parsed.report.mr_enclave == mrenclave
    assert parsed.report.mr_signer == platform.mrsigner
    assert parsed.report.report_data == REPORT_DATA
    assert int.from_bytes(quote[304:306], "little") == 7
    assert int.from_bytes(quote[306:308], "little") == 3
    assert quote[96] & 0x02 == 0  # not a debug enclave


def test_default_mrenclave_is_the_aggregator_code_measurement(platform: SimulatedPlatform) -> None:
    backend = make_backend(platform)

    parsed = dcap_qvl.parse_quote(backend.evidence(REPORT_DATA).quote)

    assert parsed.report.mr_enclave == measure_aggregator_code()


def test_debug_enclave_evidence_is_refused_by_dcap_qvl(platform: SimulatedPlatform) -> None:
    evidence = make_backend(platform, debug=True).evidence(REPORT_DATA)

    assert evidence.quote[96] & 0x02 == 0x02
    with pytest.raises(ValueError, match="Debug mode"):
        verify(evidence.quote, evidence.collateral_json, platform.root_ca_der)


@pytest.mark.parametrize(
    ("status", "advisories"),
    [
        ("SWHardeningNeeded", ["INTEL-SA-00615"]),
        ("ConfigurationNeeded", ["INTEL-SA-00289"]),
        ("ConfigurationAndSWHardeningNeeded", ["INTEL-SA-00289", "INTEL-SA-00615"]),
        ("OutOfDate", ["INTEL-SA-00828"]),
        ("OutOfDateConfigurationNeeded", ["INTEL-SA-00289", "INTEL-SA-00828"]),
    ],
)
def test_requested_tcb_status_is_what_dcap_qvl_reports(
    platform: SimulatedPlatform, status: str, advisories: list[str]
) -> None:
    evidence = make_backend(platform, tcb_status=status).evidence(REPORT_DATA)

    report = verify(evidence.quote, evidence.collateral_json, platform.root_ca_der)

    assert report.status == status  # type: ignore[attr-defined]
    assert report.advisory_ids == advisories  # type: ignore[attr-defined]


def test_revoked_platform_is_refused_by_dcap_qvl(platform: SimulatedPlatform) -> None:
    evidence = make_backend(platform, tcb_status="Revoked").evidence(REPORT_DATA)

    with pytest.raises(ValueError, match="Revoked"):
        verify(evidence.quote, evidence.collateral_json, platform.root_ca_der)


def test_unknown_tcb_status_is_rejected_at_construction(platform: SimulatedPlatform) -> None:
    with pytest.raises(ValueError, match="unknown TCB status"):
        make_backend(platform, tcb_status="Fine")


def test_evidence_from_another_platform_fails_against_this_root(
    platform: SimulatedPlatform, other_platform: SimulatedPlatform
) -> None:
    evidence = make_backend(other_platform).evidence(REPORT_DATA)

    with pytest.raises(ValueError, match="Verification failed"):
        verify(evidence.quote, evidence.collateral_json, platform.root_ca_der)


def test_intel_root_does_not_accept_simulated_quotes(platform: SimulatedPlatform) -> None:
    evidence = make_backend(platform).evidence(REPORT_DATA)
    collateral = dcap_qvl.QuoteCollateralV3.from_json(evidence.collateral_json)

    with pytest.raises(ValueError, match="Verification failed"):
        dcap_qvl.verify(evidence.quote, collateral, NOW)


def test_collateral_is_refused_once_now_is_past_its_next_update(platform: SimulatedPlatform) -> None:
    evidence = make_backend(platform).evidence(REPORT_DATA)
    verify(evidence.quote, evidence.collateral_json, platform.root_ca_der, NOW + 29 * DAY)

    with pytest.raises(ValueError, match=r"(?i)expired"):
        verify(evidence.quote, evidence.collateral_json, platform.root_ca_der, NOW + 31 * DAY)


def test_collateral_follows_the_injected_clock(platform: SimulatedPlatform) -> None:
    later = NOW + 60 * DAY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSimulationWarning)
        backend = InsecureSimulationBackend(platform, clock=lambda: later)

    evidence = backend.evidence(REPORT_DATA)

    assert verify(evidence.quote, evidence.collateral_json, platform.root_ca_der, later).status == "UpToDate"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        verify(evidence.quote, evidence.collateral_json, platform.root_ca_der, NOW)


def test_reloaded_platform_makes_quotes_verifiable_under_the_same_root(platform: SimulatedPlatform) -> None:
    reloaded = SimulatedPlatform.load(platform.directory)

    evidence = make_backend(reloaded).evidence(REPORT_DATA)

    assert reloaded.root_ca_der == platform.root_ca_der
    assert reloaded.mrsigner == platform.mrsigner
    assert verify(evidence.quote, evidence.collateral_json, platform.root_ca_der).status == "UpToDate"  # type: ignore[attr-defined]


def test_load_or_create_creates_once_then_loads(tmp_path: Path) -> None:
    first = SimulatedPlatform.load_or_create(tmp_path / "p", now=NOW)

    second = SimulatedPlatform.load_or_create(tmp_path / "p", now=NOW)

    assert second.root_ca_der == first.root_ca_der


def test_create_refuses_a_directory_that_already_holds_a_platform(platform: SimulatedPlatform) -> None:
    with pytest.raises(FileExistsError):
        SimulatedPlatform.create(platform.directory)


def test_private_keys_are_readable_by_the_owner_only(platform: SimulatedPlatform) -> None:
    key_files = [*sorted(platform.directory.glob("*.key")), platform.directory / "enclave_signing_key.pem"]

    modes = {path.name: path.stat().st_mode & 0o777 for path in key_files}

    assert len(modes) == 5
    assert set(modes.values()) == {0o600}


def test_root_ca_subject_says_it_is_a_simulation(platform: SimulatedPlatform) -> None:
    root = x509.load_der_x509_certificate(platform.root_ca_der)

    common_name = root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value

    assert SIMULATION_CN_MARKER in str(common_name)
    assert "enclavefl INSECURE simulation" in str(common_name)


def test_pck_leaf_extension_is_parsed_by_dcap_qvl(platform: SimulatedPlatform) -> None:
    parsed = dcap_qvl.parse_quote(make_backend(platform).evidence(REPORT_DATA).quote)

    extension = parsed.pck_extension()

    assert extension.fmspc == platform.fmspc
    assert extension.pce_id == b"\x00\x00"
    assert extension.pce_svn == 13
    assert extension.sgx_type == 0
    assert len(extension.ppid) == 16


def test_backend_satisfies_the_protocol_and_says_it_is_insecure(platform: SimulatedPlatform) -> None:
    backend = make_backend(platform)

    assert isinstance(backend, TeeBackend)
    assert backend.is_insecure is True
    assert backend.name == "insecure-simulation"


def test_construction_warns_and_logs_that_it_is_insecure(
    platform: SimulatedPlatform, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="enclavefl.tee.insecure"),
        pytest.warns(InsecureSimulationWarning, match="INSECURE"),
    ):
        InsecureSimulationBackend(platform, clock=time.time)

    assert any("INSECURE" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_evidence_requires_exactly_64_bytes_of_report_data(platform: SimulatedPlatform, size: int) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        make_backend(platform).evidence(bytes(size))


@pytest.mark.slow
def test_evidence_made_in_another_process_verifies_under_this_processs_root(
    platform: SimulatedPlatform, tmp_path: Path
) -> None:
    script = (
        "import sys, warnings\n"
        "from pathlib import Path\n"
        "from enclavefl.tee.insecure import InsecureSimulationBackend, SimulatedPlatform\n"
        "warnings.simplefilter('ignore')\n"
        "platform = SimulatedPlatform.load(sys.argv[1])\n"
        f"backend = InsecureSimulationBackend(platform, clock=lambda: {NOW})\n"
        "evidence = backend.evidence(bytes(range(64)))\n"
        "out = Path(sys.argv[2])\n"
        "(out / 'quote').write_bytes(evidence.quote)\n"
        "(out / 'collateral.json').write_text(evidence.collateral_json)\n"
    )

    subprocess.run([sys.executable, "-c", script, str(platform.directory), str(tmp_path)], check=True)

    quote, collateral = (tmp_path / "quote").read_bytes(), (tmp_path / "collateral.json").read_text()
    assert verify(quote, collateral, platform.root_ca_der).status == "UpToDate"  # type: ignore[attr-defined]

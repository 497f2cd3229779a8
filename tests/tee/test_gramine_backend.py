"""GramineBackend against a directory that mimics /dev/attestation, and (SGX=1) the real one."""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path
from typing import Any

import dcap_qvl
import pytest

from enclavefl.errors import TeeUnavailable
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.collateral import FileCollateralSource
from enclavefl.tee.evidence import TeeKind
from enclavefl.tee.inside import gramine as gramine_module
from enclavefl.tee.inside.gramine import GramineBackend
from enclavefl.tee.verify.pccs import PccsCollateralSource

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "phala-dcap-qvl"
# The Phala sample quote binds this report data (README of the vectors).
SAMPLE_REPORT_DATA = b"Hello, world!".ljust(64, b"\x00")
SAMPLE_VERIFY_AT = 1752919277


@pytest.fixture
def attestation_dir(tmp_path: Path) -> Path:
    root = tmp_path / "attestation"
    (root / "keys").mkdir(parents=True)
    (root / "attestation_type").write_text("dcap")
    (root / "user_report_data").write_bytes(bytes(64))
    shutil.copyfile(VECTORS / "sgx_quote", root / "quote")
    (root / "keys" / "_sgx_mrenclave").write_bytes(bytes(range(16)))
    return root


@pytest.fixture
def collateral() -> FileCollateralSource:
    return FileCollateralSource(VECTORS / "sgx_quote_collateral.json")


def test_evidence_writes_report_data_and_returns_the_quote_with_collateral(
    attestation_dir: Path, collateral: FileCollateralSource
) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    evidence = backend.evidence(SAMPLE_REPORT_DATA)

    assert (attestation_dir / "user_report_data").read_bytes() == SAMPLE_REPORT_DATA
    assert evidence.quote == (VECTORS / "sgx_quote").read_bytes()
    assert evidence.tee is TeeKind.SGX
    report = dcap_qvl.verify(
        evidence.quote, dcap_qvl.QuoteCollateralV3.from_json(evidence.collateral_json), SAMPLE_VERIFY_AT
    )
    assert report.status == "ConfigurationAndSWHardeningNeeded"


def test_report_data_goes_in_one_unbuffered_write(
    attestation_dir: Path, collateral: FileCollateralSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, int]] = []
    writes: list[int] = []

    class RecordingFile:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __enter__(self) -> RecordingFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self._inner.close()

        def write(self, data: bytes) -> int:
            writes.append(len(data))
            return int(self._inner.write(data))

    def recording_open(path: Any, mode: str = "r", buffering: int = -1, **kwargs: Any) -> Any:
        opened.append((Path(path).name, buffering))
        return RecordingFile(builtins.open(path, mode, buffering, **kwargs))

    monkeypatch.setattr(gramine_module, "open", recording_open, raising=False)
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    backend.evidence(SAMPLE_REPORT_DATA)

    assert opened == [("user_report_data", 0)]
    assert writes == [64]


def test_quote_that_does_not_carry_the_written_report_data_is_refused(
    attestation_dir: Path, collateral: FileCollateralSource
) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    with pytest.raises(TeeUnavailable, match="does not carry the report data"):
        backend.evidence(bytes(64))


@pytest.mark.parametrize("size", [0, 13, 65])
def test_report_data_must_be_exactly_64_bytes(
    attestation_dir: Path, collateral: FileCollateralSource, size: int
) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    with pytest.raises(ValueError, match="64 bytes"):
        backend.evidence(bytes(size))


def test_attestation_type_other_than_dcap_is_refused_naming_it(
    attestation_dir: Path, collateral: FileCollateralSource
) -> None:
    (attestation_dir / "attestation_type").write_text("none")

    with pytest.raises(TeeUnavailable, match="'none'"):
        GramineBackend(root=attestation_dir, collateral=collateral)


def test_missing_attestation_directory_means_no_gramine_sgx(tmp_path: Path, collateral: FileCollateralSource) -> None:
    with pytest.raises(TeeUnavailable, match="not running inside a Gramine-SGX enclave"):
        GramineBackend(root=tmp_path / "nothing", collateral=collateral)


def test_missing_quote_file_is_reported(attestation_dir: Path, collateral: FileCollateralSource) -> None:
    (attestation_dir / "quote").unlink()
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    with pytest.raises(TeeUnavailable, match="quote"):
        backend.evidence(SAMPLE_REPORT_DATA)


def test_missing_collateral_bundle_is_reported(attestation_dir: Path, tmp_path: Path) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=FileCollateralSource(tmp_path / "none.json"))

    with pytest.raises(TeeUnavailable, match="no collateral bundle"):
        backend.evidence(SAMPLE_REPORT_DATA)


def test_sealing_key_reads_the_default_mrenclave_key(attestation_dir: Path, collateral: FileCollateralSource) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    assert backend.sealing_key() == bytes(range(16))


@pytest.mark.parametrize("content", [b"", bytes(15), bytes(17)])
def test_sealing_key_of_the_wrong_size_is_refused(
    attestation_dir: Path, collateral: FileCollateralSource, content: bytes
) -> None:
    (attestation_dir / "keys" / "state").write_bytes(content)
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    with pytest.raises(TeeUnavailable, match="expected 16"):
        backend.sealing_key("state")


def test_undeclared_sealing_key_is_reported(attestation_dir: Path, collateral: FileCollateralSource) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    with pytest.raises(TeeUnavailable, match="declares"):
        backend.sealing_key("_sgx_mrsigner")


def test_backend_satisfies_the_protocol_and_is_not_insecure(
    attestation_dir: Path, collateral: FileCollateralSource
) -> None:
    backend = GramineBackend(root=attestation_dir, collateral=collateral)

    assert isinstance(backend, TeeBackend)
    assert backend.name == "gramine-sgx"
    assert backend.is_insecure is False


def test_pccs_source_needs_an_explicit_http_url() -> None:
    assert PccsCollateralSource("https://pccs.example:8081/").pccs_url == "https://pccs.example:8081/"
    with pytest.raises(ValueError, match="http"):
        PccsCollateralSource("")


class PlaceholderCollateral:
    """Hardware test only checks the quote; collateral verification is another test's job."""

    def collateral_for(self, quote: bytes) -> str:
        return "{}"


@pytest.mark.sgx
@pytest.mark.skipif(os.environ.get("SGX") != "1", reason="needs Gramine-SGX hardware (run with SGX=1)")
def test_real_dev_attestation_produces_a_quote_binding_our_report_data() -> None:
    backend = GramineBackend(collateral=PlaceholderCollateral())
    report_data = os.urandom(64)

    evidence = backend.evidence(report_data)

    assert dcap_qvl.parse_quote(evidence.quote).report.report_data == report_data
    assert len(backend.sealing_key()) == 16


def test_quote_alone_needs_no_collateral(attestation_dir: Path, tmp_path: Path) -> None:
    # The node prints a platform quote at start, before the host agent wrote any collateral.
    backend = GramineBackend(root=attestation_dir, collateral=FileCollateralSource(tmp_path / "absent.json"))

    assert backend.quote(SAMPLE_REPORT_DATA) == (VECTORS / "sgx_quote").read_bytes()
    with pytest.raises(TeeUnavailable, match="host agent"):
        backend.evidence(SAMPLE_REPORT_DATA)

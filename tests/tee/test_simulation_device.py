"""The simulated /dev/attestation behaves like Gramine's, and its sealing keys bind the identity."""

from __future__ import annotations

import warnings
from pathlib import Path

import dcap_qvl
import pytest

from enclavefl.errors import TeeUnavailable
from enclavefl.tee.insecure import InsecureSimulationBackend, InsecureSimulationWarning, SimulatedPlatform

NOW = 1_790_000_000
MRENCLAVE_A = bytes([0xAA]) * 32
MRENCLAVE_B = bytes([0xBB]) * 32


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    return SimulatedPlatform.create(tmp_path_factory.mktemp("platform"), now=NOW)


def make_backend(platform: SimulatedPlatform, **kwargs: object) -> InsecureSimulationBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSimulationWarning)
        return InsecureSimulationBackend(platform, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def test_attestation_type_is_dcap(platform: SimulatedPlatform) -> None:
    assert make_backend(platform).device.attestation_type == "dcap"


def test_short_user_report_data_is_zero_padded_like_gramine(platform: SimulatedPlatform) -> None:
    device = make_backend(platform).device

    device.write_user_report_data(b"Hello, world!")
    quote = device.read_quote()

    assert dcap_qvl.parse_quote(quote).report.report_data == b"Hello, world!".ljust(64, b"\x00")


def test_long_user_report_data_is_truncated_like_gramine(platform: SimulatedPlatform) -> None:
    device = make_backend(platform).device

    device.write_user_report_data(bytes(range(80)))

    assert device.read_user_report_data() == bytes(range(64))


def test_sealing_key_is_16_bytes_and_stable_across_reloads(platform: SimulatedPlatform) -> None:
    key = make_backend(platform, mrenclave=MRENCLAVE_A).sealing_key("_sgx_mrenclave")

    again = make_backend(SimulatedPlatform.load(platform.directory), mrenclave=MRENCLAVE_A).sealing_key(
        "_sgx_mrenclave"
    )

    assert len(key) == 16
    assert again == key


def test_another_measurement_gets_another_mrenclave_sealing_key(platform: SimulatedPlatform) -> None:
    key_a = make_backend(platform, mrenclave=MRENCLAVE_A).sealing_key("_sgx_mrenclave")

    key_b = make_backend(platform, mrenclave=MRENCLAVE_B).sealing_key("_sgx_mrenclave")

    assert key_a != key_b


def test_mrsigner_sealing_key_survives_a_code_change(platform: SimulatedPlatform) -> None:
    key_a = make_backend(platform, mrenclave=MRENCLAVE_A).sealing_key("_sgx_mrsigner")

    key_b = make_backend(platform, mrenclave=MRENCLAVE_B).sealing_key("_sgx_mrsigner")

    assert key_a == key_b


def test_key_names_and_debug_mode_give_distinct_keys(platform: SimulatedPlatform) -> None:
    backend = make_backend(platform, mrenclave=MRENCLAVE_A)

    keys = {
        backend.sealing_key("_sgx_mrenclave"),
        backend.sealing_key("state"),
        make_backend(platform, mrenclave=MRENCLAVE_A, debug=True).sealing_key("_sgx_mrenclave"),
    }

    assert len(keys) == 3


def test_another_platform_gets_another_sealing_key(
    platform: SimulatedPlatform, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = SimulatedPlatform.create(tmp_path_factory.mktemp("other"), now=NOW)

    key = make_backend(other, mrenclave=MRENCLAVE_A).sealing_key("_sgx_mrenclave")

    assert key != make_backend(platform, mrenclave=MRENCLAVE_A).sealing_key("_sgx_mrenclave")


def test_written_key_shadows_the_derived_one(platform: SimulatedPlatform) -> None:
    backend = make_backend(platform)
    provisioned = bytes(range(16))

    backend.device.write_key("state", provisioned)

    assert backend.sealing_key("state") == provisioned


@pytest.mark.parametrize(("name", "key"), [("_sgx_mrenclave", bytes(16)), ("state", bytes(15))])
def test_read_only_keys_and_wrong_sizes_cannot_be_written(platform: SimulatedPlatform, name: str, key: bytes) -> None:
    with pytest.raises(PermissionError):
        make_backend(platform).device.write_key(name, key)


@pytest.mark.parametrize("name", ["", "../secret", "a/b"])
def test_key_names_that_are_not_a_file_name_are_refused(platform: SimulatedPlatform, name: str) -> None:
    with pytest.raises(TeeUnavailable):
        make_backend(platform).sealing_key(name)


def test_load_of_an_empty_directory_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(TeeUnavailable, match="missing"):
        SimulatedPlatform.load(tmp_path)

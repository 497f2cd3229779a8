"""Simulated measurements: MRENCLAVE follows the enclave's code (its import closure), MRSIGNER Gramine's rule."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from enclavefl.errors import ConfigError
from enclavefl.tee.insecure import aggregator_code_files, measure_aggregator_code, mrsigner_of
from enclavefl.tee.insecure.measurement import ENCLAVEFL_PACKAGE_DIR


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "enclavefl"
    shutil.copytree(ENCLAVEFL_PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_faithful_copy_measures_the_same_as_the_package(package_copy: Path) -> None:
    assert measure_aggregator_code(package_copy) == measure_aggregator_code()


def test_changing_one_source_file_changes_the_measurement(package_copy: Path) -> None:
    before = measure_aggregator_code(package_copy)
    target = package_copy / "errors" / "_common.py"

    target.write_text(target.read_text() + "\n# one more line\n")

    assert measure_aggregator_code(package_copy) != before


def test_adding_a_module_the_enclave_imports_changes_the_measurement(package_copy: Path) -> None:
    before = measure_aggregator_code(package_copy)
    (package_copy / "core" / "backdoor.py").write_text("LEAK = True\n")
    assert measure_aggregator_code(package_copy) == before  # not imported by the enclave: not in it

    node = package_copy / "enclave" / "node.py"
    node.write_text(node.read_text() + "\ndef _leak() -> None:\n    import enclavefl.core.backdoor  # noqa\n")

    assert measure_aggregator_code(package_copy) != before


def test_renaming_a_file_changes_the_measurement(package_copy: Path) -> None:
    before = measure_aggregator_code(package_copy)

    (package_copy / "enclave" / "finite.py").rename(package_copy / "enclave" / "finite2.py")
    for importer in (package_copy / "enclave").glob("*.py"):
        text = importer.read_text()
        importer.write_text(text.replace("enclavefl.enclave.finite ", "enclavefl.enclave.finite2 "))

    assert measure_aggregator_code(package_copy) != before


def test_a_module_the_enclave_imports_that_is_missing_is_refused(package_copy: Path) -> None:
    (package_copy / "errors" / "_common.py").rename(package_copy / "errors" / "_common2.py")

    with pytest.raises(ConfigError, match=r"enclavefl\.errors\._common has no source file"):
        measure_aggregator_code(package_copy)


def test_owner_simulation_and_cli_code_are_not_measured(package_copy: Path) -> None:
    before = measure_aggregator_code(package_copy)

    for relative in (
        "task/api.py",
        "cli/main.py",
        "owner/data_owner_loop.py",
        "sim/federation.py",
        "tee/verify/policy.py",
    ):
        path = package_copy / relative
        path.write_text(path.read_text() + "\n# edited outside the enclave\n")

    assert measure_aggregator_code(package_copy) == before


def test_an_optional_part_a_plain_job_never_loads_is_measured_all_the_same(package_copy: Path) -> None:
    """Masked mode is loaded by name (enclave/parts.py) only for a masked job; the measurement covers it."""
    before = measure_aggregator_code(package_copy)

    masked = package_copy / "enclave" / "masked" / "mode.py"
    masked.write_text(masked.read_text() + "\n# edited inside the enclave\n")

    assert measure_aggregator_code(package_copy) != before


def test_measured_file_set_is_the_enclaves_import_closure() -> None:
    files = [p.as_posix() for p in aggregator_code_files()]

    assert {"errors/_common.py", "enclave/main.py", "enclave/worker.py", "tee/inside/seal.py"} <= set(files)
    assert not any(f.startswith(("task/", "cli/", "owner/", "sim/", "demos/", "host/", "tee/insecure/")) for f in files)
    assert files == sorted(files)


def test_mrsigner_is_sha256_of_the_little_endian_modulus() -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=3072)
    modulus = key.public_key().public_numbers().n

    assert mrsigner_of(key) == hashlib.sha256(modulus.to_bytes(384, "little")).digest()
    assert mrsigner_of(key) != hashlib.sha256(modulus.to_bytes(384, "big")).digest()


def test_mrsigner_refuses_keys_that_are_not_rsa_3072() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(ValueError, match="RSA-3072"):
        mrsigner_of(key)

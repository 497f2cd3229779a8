"""`enclavefl enclave`: init writes a build directory, measure reads a .sig and writes a policy."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from enclavefl.cli.enclave import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.tee.gramine_pkg import build_sigstruct, parse_sigstruct
from enclavefl.tee.verify.policy_file import load_policy

runner = CliRunner()
MRENCLAVE = bytes.fromhex("ab" * 32)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


@pytest.fixture(scope="module")
def sig_bytes(key: rsa.RSAPrivateKey) -> bytes:
    return build_sigstruct(key, mrenclave=MRENCLAVE, isv_prod_id=5, isv_svn=2, date="2026-11-26")


@pytest.fixture
def sigfile(tmp_path: Path, sig_bytes: bytes) -> Path:
    path = tmp_path / "aggregator.sig"
    path.write_bytes(sig_bytes)
    return path


def test_init_writes_a_build_directory(tmp_path: Path) -> None:
    target = tmp_path / "enclave"

    result = runner.invoke(app, ["init", str(target), "--enclave-size", "2G", "--port", "9443", "--isv-svn", "3"])

    assert result.exit_code == 0, result.output
    build = (target / "build.sh").read_text().splitlines()
    assert "ENCLAVE_SIZE=2G" in build
    assert "PORT=9443" in build
    assert "ISV_SVN=3" in build
    assert f"STATE_DIR={target / 'state'}" in build
    assert (target / "aggregator.manifest.template").exists()
    assert (target / "job").is_dir()


def test_init_defaults_to_the_running_venv_interpreter(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "e")])

    assert result.exit_code == 0, result.output
    assert f"VENV_PYTHON={Path(sys.executable).absolute()}" in (tmp_path / "e" / "build.sh").read_text()


def test_init_refuses_a_size_that_is_not_a_power_of_two(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "e"), "--enclave-size", "3G"])

    assert result.exit_code == ExitCode.CONFIG
    assert "power of two" in result.output
    assert not (tmp_path / "e" / "build.sh").exists()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0

    refused = runner.invoke(app, ["init", str(tmp_path), "--port", "1234"])
    forced = runner.invoke(app, ["init", str(tmp_path), "--port", "1234", "--force"])

    assert refused.exit_code == ExitCode.CONFIG
    assert "overwrite" in refused.output
    assert forced.exit_code == 0
    assert "PORT=1234" in (tmp_path / "build.sh").read_text().splitlines()


def test_measure_prints_the_identity(sigfile: Path, sig_bytes: bytes) -> None:
    result = runner.invoke(app, ["measure", str(sigfile)])

    assert result.exit_code == 0, result.output
    assert MRENCLAVE.hex() in result.output
    assert parse_sigstruct(sig_bytes).mrsigner.hex() in result.output
    assert "2026-11-26" in result.output


def test_measure_json_has_every_policy_value(sigfile: Path, sig_bytes: bytes) -> None:
    result = runner.invoke(app, ["measure", str(sigfile), "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "mrenclave": MRENCLAVE.hex(),
        "mrsigner": parse_sigstruct(sig_bytes).mrsigner.hex(),
        "isv_prod_id": 5,
        "isv_svn": 2,
        "debug": False,
        "date": "2026-11-26",
    }


def test_measure_writes_a_policy_the_policy_loader_accepts(sigfile: Path, sig_bytes: bytes, tmp_path: Path) -> None:
    policy_path = tmp_path / "policy.toml"

    result = runner.invoke(app, ["measure", str(sigfile), "--policy-out", str(policy_path)])

    assert result.exit_code == 0, result.output
    policy = load_policy(policy_path)
    assert policy.allowed_mrenclaves == frozenset({MRENCLAVE})
    assert policy.allowed_mrsigners == frozenset({parse_sigstruct(sig_bytes).mrsigner})
    assert (policy.required_isv_prod_id, policy.minimum_isv_svn) == (5, 2)
    assert not policy.accepts_debug_enclave_insecure


def test_measure_refuses_a_tampered_sig(sigfile: Path, tmp_path: Path) -> None:
    data = bytearray(sigfile.read_bytes())
    data[960] ^= 1  # MRENCLAVE changed after signing
    sigfile.write_bytes(bytes(data))
    policy_path = tmp_path / "policy.toml"

    result = runner.invoke(app, ["measure", str(sigfile), "--policy-out", str(policy_path)])

    assert result.exit_code == ExitCode.REFUSED
    assert "signature" in result.output
    assert not policy_path.exists()


def test_measure_refuses_a_file_that_is_not_a_sigstruct(tmp_path: Path) -> None:
    path = tmp_path / "x.sig"
    path.write_bytes(b"not a sigstruct")

    result = runner.invoke(app, ["measure", str(path)])

    assert result.exit_code == ExitCode.CONFIG
    assert "1808" in result.output


def test_measure_warns_about_a_debug_enclave(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "debug.sig"
    path.write_bytes(build_sigstruct(key, mrenclave=MRENCLAVE, attribute_flags=0x6))

    result = runner.invoke(app, ["measure", str(path)])

    assert result.exit_code == 0
    assert "DEBUG enclave" in result.output


def test_check_manifest_accepts_a_hardened_manifest_and_refuses_debug(tmp_path: Path) -> None:
    good = tmp_path / "good.manifest"
    good.write_text(
        'libos.entrypoint = "/v/bin/python3"\nloader.argv = ["/v/bin/python3"]\nloader.log_level = "error"\n'
        'fs.mounts = [ { type = "encrypted", path = "/s/", uri = "file:/s/", key_name = "_sgx_mrenclave" } ]\n'
        'sgx.debug = false\nsgx.remote_attestation = "dcap"\nsgx.enclave_size = "1G"\nsgx.max_threads = 8\n'
    )
    bad = tmp_path / "bad.manifest"
    bad.write_text(good.read_text().replace("sgx.debug = false", "sgx.debug = true"))
    signer_sealed = tmp_path / "signer-sealed.manifest"
    signer_sealed.write_text(good.read_text().replace("_sgx_mrenclave", "_sgx_mrsigner"))

    accepted = runner.invoke(app, ["check-manifest", str(good)])
    refused = runner.invoke(app, ["check-manifest", str(bad)])
    refused_signer = runner.invoke(app, ["check-manifest", str(signer_sealed)])

    assert accepted.exit_code == 0, accepted.output
    assert refused.exit_code == ExitCode.REFUSED
    assert "sgx.debug" in refused.output
    assert refused_signer.exit_code == ExitCode.REFUSED
    assert "'_sgx_mrsigner': it must be '_sgx_mrenclave'" in refused_signer.output


def test_trusted_paths_refuses_an_editable_enclavefl() -> None:
    # The dev venv installs enclavefl with -e: its code lives outside the venv the enclave mounts.
    files = importlib.metadata.distribution("enclavefl").files or []
    if not any(f.name.endswith(".pth") for f in files):
        pytest.skip("enclavefl is not installed in editable mode here")
    result = runner.invoke(app, ["trusted-paths"])

    assert result.exit_code == ExitCode.CONFIG
    assert "editable" in result.output


def test_help_explains_the_workflow() -> None:
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    assert "build.sh" in result.output
    assert "policy.toml" in result.output

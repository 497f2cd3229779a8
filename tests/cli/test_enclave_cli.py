"""`enclavefl enclave`: init writes a build directory, measure reads a .sig and writes a policy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from enclavefl.cli.enclave import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import JobSpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.strategies import job_enclave_bytes
from enclavefl.tee.gramine_pkg import build_sigstruct, parse_sigstruct
from enclavefl.tee.gramine_pkg.release_inputs import load_release_inputs
from enclavefl.tee.verify.policy import DEFAULT_MAX_COLLATERAL_AGE_SECONDS
from enclavefl.tee.verify.policy_file import load_policy

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
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


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    model = ModelWeights({"w": np.zeros((256, 256), np.float32)})  # 256 KiB
    job = JobSpec(
        name="release-test",
        rounds=1,
        train=TrainConfig(local_steps=1),
        model_schema=model.schema,
        initial_model_sha256=model.sha256().hex(),
    )
    path = tmp_path / "job.toml"
    path.write_text(dump_job(job))
    return path


def init_args(release: Path, job_file: Path, *extra: str) -> list[str]:
    return [
        "init",
        str(release),
        "--job",
        str(job_file),
        "--pins",
        str(REPO / "packaging/enclave/release-pins.toml"),
        "--requirements",
        str(REPO / "requirements-enclave.txt"),
        "--build-requirements",
        str(REPO / "packaging/enclave/requirements-build.txt"),
        *extra,
    ]


def test_init_records_the_release_inputs_and_copies_the_job(tmp_path: Path, job_file: Path) -> None:
    release = tmp_path / "release"

    result = runner.invoke(app, init_args(release, job_file, "--port", "9443", "--isv-svn", "3"))

    assert result.exit_code == 0, result.output
    inputs = load_release_inputs(release / "release.toml")
    assert (inputs.enclave.port, inputs.enclave.isv_svn) == (9443, 3)
    assert (release / "job" / "job.toml").read_bytes() == job_file.read_bytes()
    assert inputs.job_sha256 == hashlib.sha256(job_file.read_bytes()).hexdigest()
    assert any(p.name == "python3.11-minimal" for p in inputs.debian.packages)
    assert any(r.startswith("numpy==") for r in inputs.requirements)


def test_init_derives_the_enclave_size_from_the_job(tmp_path: Path, job_file: Path) -> None:
    result = runner.invoke(app, init_args(tmp_path / "r", job_file))

    inputs = load_release_inputs(tmp_path / "r" / "release.toml")
    needed = job_enclave_bytes(load_job(job_file), rpc_workers=inputs.enclave.rpc_workers)
    assert result.exit_code == 0, result.output
    assert inputs.enclave.enclave_size_bytes >= needed > inputs.enclave.enclave_size_bytes // 2
    assert f"needs {needed / 2**20:.0f} MiB" in result.output


def test_init_refuses_a_size_the_job_does_not_fit_in(tmp_path: Path, job_file: Path) -> None:
    result = runner.invoke(app, init_args(tmp_path / "r", job_file, "--enclave-size", "256M"))

    assert result.exit_code == ExitCode.CONFIG
    assert "EnclaveTooSmall" in result.output and "256 MiB" in result.output
    assert not (tmp_path / "r" / "release.toml").exists()


def test_init_refuses_a_size_that_is_not_a_power_of_two(tmp_path: Path, job_file: Path) -> None:
    result = runner.invoke(app, init_args(tmp_path / "r", job_file, "--enclave-size", "3G"))

    assert result.exit_code == ExitCode.CONFIG
    assert "power of two" in result.output
    assert not (tmp_path / "r" / "release.toml").exists()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, job_file: Path) -> None:
    assert runner.invoke(app, init_args(tmp_path, job_file)).exit_code == 0

    refused = runner.invoke(app, init_args(tmp_path, job_file, "--port", "1234"))
    forced = runner.invoke(app, init_args(tmp_path, job_file, "--port", "1234", "--force"))

    assert refused.exit_code == ExitCode.CONFIG
    assert "overwrite" in refused.output
    assert forced.exit_code == 0
    assert load_release_inputs(tmp_path / "release.toml").enclave.port == 1234


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
    assert policy.max_collateral_age_seconds == DEFAULT_MAX_COLLATERAL_AGE_SECONDS
    assert policy.accepted_advisories == frozenset() and not policy.accepts_sw_hardening_needed


def test_measure_records_the_accepted_advisories_and_collateral_age_in_the_policy(
    sigfile: Path, tmp_path: Path
) -> None:
    policy_path = tmp_path / "policy.toml"

    result = runner.invoke(
        app,
        [
            "measure",
            str(sigfile),
            "--policy-out",
            str(policy_path),
            "--accept-advisory",
            "intel-sa-00615",
            "--accept-advisory",
            "INTEL-SA-00657",
            "--max-collateral-age-days",
            "2",
        ],
    )

    assert result.exit_code == 0, result.output
    policy = load_policy(policy_path)
    assert policy.accepted_advisories == frozenset({"INTEL-SA-00615", "INTEL-SA-00657"})
    assert policy.accepts_sw_hardening_needed and not policy.accepts_hw_config_needed
    assert policy.max_collateral_age_seconds == 2 * 86400


def test_measure_refuses_an_advisory_that_is_not_an_intel_advisory_id(sigfile: Path, tmp_path: Path) -> None:
    policy_path = tmp_path / "policy.toml"

    result = runner.invoke(app, ["measure", str(sigfile), "--policy-out", str(policy_path), "--accept-advisory", "all"])

    assert result.exit_code == ExitCode.CONFIG
    assert "INTEL-SA-00615" in result.output
    assert not policy_path.exists()


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
        'loader.entrypoint.uri = "file:gramine/libsysdb.so"\n'
        'fs.mounts = [ { type = "encrypted", path = "/s/", uri = "file:s/", key_name = "_sgx_mrenclave" } ]\n'
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


def test_help_explains_the_workflow() -> None:
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    assert "release.toml" in result.output and "rebuild.sh" in result.output
    assert "policy.toml" in result.output

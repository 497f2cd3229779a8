"""The CLI imports torch, scikit-learn, matplotlib, scipy, dp-accounting and the demos only in the commands
that use them: `enclavefl --help`, every group's --help and every `enclave` subcommand run in the enclave venv,
which has none of torch, scikit-learn or matplotlib (the release build calls `enclave assemble`,
`add-gramine`, `check-manifest`, `file-set` and `measure` with it).

How the enclave venv is stood in for: each command runs in a fresh interpreter whose first action installs a
meta-path finder that raises ModuleNotFoundError for the blocked top-level names, exactly what Python raises
when a distribution is not installed. A real venv would need grpcio, numpy, scipy, dcap-qvl... reinstalled
(minutes, network) to show the same thing; a control test proves the blocker does block.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import blocked_imports
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from enclavefl.core.job import JobSpec, TrainConfig
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.tee.gramine_pkg import build_sigstruct

NOT_IN_ENCLAVE_VENV = ("torch", "sklearn", "matplotlib")
# Not blocked (the enclave venv has them) but `--help` must not load them either: they cost seconds.
HEAVY = ("torch", "sklearn", "matplotlib", "scipy", "dp_accounting", "enclavefl.demos")
GROUPS = ("attest", "enclave", "node", "data-owner", "job", "demo", "digits", "simulate")


def run_without(
    tmp_path: Path, *args: str, blocked: tuple[str, ...] = NOT_IN_ENCLAVE_VENV
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `enclavefl ARGS` in a fresh interpreter where `blocked` cannot be imported; also the heavy modules it
    loaded."""
    loaded_file = tmp_path / f"loaded-{os.getpid()}-{len(list(tmp_path.iterdir()))}.json"
    done = subprocess.run(
        blocked_imports.command(blocked, loaded_file, args),
        capture_output=True, text=True, env=blocked_imports.ENV, timeout=120, check=False,
    )  # fmt: skip
    modules: list[str] = json.loads(loaded_file.read_text())["modules"] if loaded_file.exists() else []
    loaded = [m for m in modules if m.partition(".")[0] in HEAVY or m.startswith("enclavefl.demos")]
    return done, loaded


def assert_no_import_crash(done: subprocess.CompletedProcess[str]) -> None:
    assert "ModuleNotFoundError" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_the_blocker_blocks(tmp_path: Path) -> None:
    # The control: a command that does need torch fails under the blocker, so the tests below can fail.
    done, _ = run_without(tmp_path, "demo", "--rounds", "1")

    assert done.returncode != 0
    assert "No module named 'torch'" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("group", ["", *GROUPS])
def test_help_loads_no_heavy_module(tmp_path: Path, group: str) -> None:
    done, loaded = run_without(tmp_path, *([group] if group else []), "--help")

    assert done.returncode == 0, done.stderr
    assert_no_import_crash(done)
    assert "Usage" in done.stdout
    assert not [m for m in loaded if m.partition(".")[0] in HEAVY or m.startswith("enclavefl.demos")], loaded


@pytest.mark.slow
@pytest.mark.parametrize("command", ["init", "assemble", "add-gramine", "measure", "check-manifest", "file-set"])
def test_enclave_subcommand_help_without_torch(tmp_path: Path, command: str) -> None:
    done, loaded = run_without(tmp_path, "enclave", command, "--help")

    assert done.returncode == 0, done.stderr
    assert not loaded, loaded


@pytest.mark.slow
def test_enclave_init_and_check_manifest_run_without_torch(tmp_path: Path) -> None:
    target = tmp_path / "release"
    job = tmp_path / "job.toml"
    model = ModelWeights({"w": np.zeros((4, 4), np.float32)})
    job.write_text(
        dump_job(
            JobSpec(
                name="j",
                rounds=1,
                train=TrainConfig(local_steps=1),
                model_schema=model.schema,
                initial_model_sha256=model.sha256().hex(),
            )
        )
    )
    repo = Path(__file__).resolve().parents[2]

    init, loaded = run_without(
        tmp_path,
        "enclave",
        "init",
        str(target),
        "--job",
        str(job),
        "--pins",
        str(repo / "packaging/enclave/release-pins.toml"),
        "--requirements",
        str(repo / "requirements-enclave.txt"),
        "--build-requirements",
        str(repo / "packaging/enclave/requirements-build.txt"),
    )

    assert init.returncode == 0, init.stderr
    assert (target / "release.toml").is_file()
    assert not loaded, loaded
    manifest = tmp_path / "aggregator.manifest"
    manifest.write_text(
        'libos.entrypoint = "/v/bin/python3"\nloader.argv = ["/v/bin/python3"]\nloader.log_level = "error"\n'
        'loader.entrypoint.uri = "file:gramine/libsysdb.so"\n'
        'fs.mounts = [ { type = "encrypted", path = "/s/", uri = "file:s/", key_name = "_sgx_mrenclave" } ]\n'
        'sgx.debug = false\nsgx.remote_attestation = "dcap"\nsgx.enclave_size = "1G"\nsgx.max_threads = 64\n'
    )
    checked, loaded = run_without(tmp_path, "enclave", "check-manifest", str(manifest))
    assert checked.returncode == 0, checked.stderr
    assert not loaded, loaded


@pytest.mark.slow
def test_enclave_measure_runs_without_torch(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=3072)
    sig = tmp_path / "aggregator.sig"
    sig.write_bytes(build_sigstruct(key, mrenclave=bytes(32), isv_prod_id=1, isv_svn=1))
    policy = tmp_path / "policy.toml"

    done, loaded = run_without(tmp_path, "enclave", "measure", str(sig), "--policy-out", str(policy))

    assert done.returncode == 0, done.stderr
    assert "0" * 64 in done.stdout
    assert policy.is_file()
    assert not loaded, loaded


@pytest.mark.slow
def test_enclave_file_set_runs_without_torch(tmp_path: Path) -> None:
    manifest = tmp_path / "aggregator.manifest"
    (tmp_path / "lib.so").write_bytes(b"x")
    manifest.write_text(f'sgx.trusted_files = ["file:{tmp_path}/lib.so"]\n')

    file_set, loaded = run_without(tmp_path, "enclave", "file-set", str(manifest))

    assert file_set.returncode == 0, file_set.stderr
    assert "file-set digest" in file_set.stdout
    assert not loaded, loaded


def test_cli_constants_mirror_their_sources() -> None:
    # The CLI keeps copies so that declaring its options imports neither torch nor dp-accounting.
    # (Exit statuses need no copies: every entry point takes them from enclavefl.core.exit_codes.)
    from enclavefl.cli import demo, digits
    from enclavefl.demos.digits import DP_DELTA
    from enclavefl.demos.seed import SEED_ROUNDS
    from enclavefl.enclave.strategies import KNOWN

    assert demo.SEED_ROUNDS == SEED_ROUNDS
    assert digits.DP_DELTA == DP_DELTA
    assert digits.KNOWN_STRATEGIES == KNOWN

"""The enclave entry point under a mimicked /dev/attestation: it prints the platform quote for the host agent,
reads its collateral only from the agent's file, and refuses to start without one configured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import JobSpec, TrainConfig
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave import main as enclave_main
from enclavefl.tee.collateral import PLATFORM_QUOTE_PREFIX

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "phala-dcap-qvl"


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    model = ModelWeights({"w": np.zeros(4, np.float32)})
    job = JobSpec(
        name="main-test",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=1,
        model_schema=model.schema,
        initial_model_sha256=model.sha256().hex(),
    )
    path = tmp_path / "job.json"
    path.write_text(job.canonical_text() + "\n")  # the form `enclavefl enclave assemble` writes
    (tmp_path / "job.toml").write_text(dump_job(job))
    return path


@pytest.fixture
def attestation_root(tmp_path: Path) -> Path:
    if not (VECTORS / "sgx_quote").exists():
        pytest.skip("needs the DCAP sample quote")
    root = tmp_path / "attestation"
    root.mkdir()
    (root / "attestation_type").write_text("dcap")
    (root / "user_report_data").write_bytes(bytes(64))
    quote = bytearray((VECTORS / "sgx_quote").read_bytes())
    quote[368:432] = bytes(64)  # the mimic does not re-sign: a quote "for" the zero report data the node writes
    (root / "quote").write_bytes(bytes(quote))
    return root


def test_main_prints_the_platform_quote_then_serves_with_the_agents_file(
    job_file: Path,
    attestation_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served: list[object] = []
    monkeypatch.setattr(enclave_main, "run_node_process", lambda **kwargs: served.append(kwargs) or 0)
    collateral = tmp_path / "collateral" / "collateral.json"  # not written yet: the agent comes after the quote

    status = enclave_main.main(
        [
            "--job",
            str(job_file),
            "--collateral",
            str(collateral),
            "--rpc-workers",
            "8",
            "--attestation-root",
            str(attestation_root),
            "--listen",
            "127.0.0.1:0",
        ]
    )

    assert status == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(PLATFORM_QUOTE_PREFIX)]
    assert lines == [PLATFORM_QUOTE_PREFIX + (attestation_root / "quote").read_bytes().hex()]
    options = served[0]["options"]  # type: ignore[index]
    assert options.rpc_workers == 8
    assert served[0]["tee"]._collateral.source.path == collateral  # type: ignore[index]


def test_main_refuses_to_start_without_the_collateral_file_and_names_the_agent(
    job_file: Path, attestation_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = enclave_main.main(["--job", str(job_file), "--attestation-root", str(attestation_root)])

    assert status == ExitCode.CONFIG
    assert "--collateral FILE" in capsys.readouterr().err


def test_main_loads_the_job_only_in_its_canonical_form(
    job_file: Path, attestation_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = enclave_main.main(["--job", str(job_file.with_name("job.toml")), "--attestation-root", "/nonexistent"])

    assert status == ExitCode.CONFIG
    assert "JobSpecError: job: not canonical JSON" in capsys.readouterr().err


def test_the_enclave_has_no_pccs_option() -> None:
    with pytest.raises(SystemExit):
        enclave_main.build_parser().parse_args(["--job", "j", "--pccs-url", "https://pccs"])

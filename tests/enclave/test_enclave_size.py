"""The enclave's size comes from the job: one formula sizes it at `enclave init`, and the node refuses at start a
job its signed enclave cannot hold, with both numbers, before it makes a quote or opens a socket."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from enclavefl.aggregation import AggregationStrategy, FedAvg
from enclavefl.aggregation.memory import (
    ENCLAVE_BYTES_PER_RPC_WORKER,
    ENCLAVE_RUNTIME_BYTES,
    ROUND_BUFFER_BYTES,
    enclave_memory_bytes,
    round_memory_bytes,
)
from enclavefl.aggregation.robust import TrimmedMean
from enclavefl.aggregation.server_opt import FedAvgM
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import JobSpec, StrategySpec, TrainConfig
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelSchema, TensorSpec
from enclavefl.enclave import main as enclave_main
from enclavefl.enclave.strategies import check_job_fits_enclave, job_enclave_bytes
from enclavefl.errors import EnclaveTooSmall, MemoryBudgetExceeded
from enclavefl.tee.gramine_pkg.manifest import enclave_size_for, render_release_manifest
from enclavefl.tee.gramine_pkg.release_inputs import load_release_inputs

MIB = 1 << 20
SOURCE = Path(__file__).resolve().parents[2]  # `enclave init` reads its pins relative to the source tree
ENCLAVEFL = Path(sys.executable).with_name("enclavefl")


def job_with_model(mib: int) -> JobSpec:
    schema = ModelSchema(tensors=(TensorSpec(name="w", shape=(mib * MIB // 4,), dtype="float32"),))
    return JobSpec(
        name=f"model-{mib}m",
        rounds=1,
        train=TrainConfig(local_steps=1),
        model_schema=schema,
        initial_model_sha256="00" * 32,
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
    )


def test_the_formula_adds_runtime_threads_buffers_and_a_round() -> None:
    strategy = FedAvg(weighted=False)
    model = 100 * MIB

    need = enclave_memory_bytes(strategy, model_bytes=model, updates=4, rpc_workers=8)

    round_bytes = round_memory_bytes(strategy, model_bytes=model, updates=4)
    assert round_bytes == 2 * model  # accumulator and staging slot: the global model is read from its checkpoint
    assert need == ENCLAVE_RUNTIME_BYTES + 8 * ENCLAVE_BYTES_PER_RPC_WORKER + ROUND_BUFFER_BYTES + round_bytes
    assert round_memory_bytes(FedAvgM(inner=strategy), model_bytes=model, updates=4) == (1 + 2 + 4) * model


@pytest.mark.parametrize(("mib", "size"), [(1, "512M"), (40, "512M"), (300, "1G"), (400, "2G")])
def test_the_release_manifest_signs_the_size_the_formula_gives(tmp_path: Path, mib: int, size: str) -> None:
    job = job_with_model(mib)
    (tmp_path / "job.toml").write_text(dump_job(job))
    need = ENCLAVE_RUNTIME_BYTES + 4 * ENCLAVE_BYTES_PER_RPC_WORKER + ROUND_BUFFER_BYTES + 2 * mib * MIB
    assert job_enclave_bytes(job, rpc_workers=4) == need  # 320 + 4 x 4 + 64 MiB + 2 x model, stated once

    init = subprocess.run(
        [str(ENCLAVEFL), "enclave", "init", str(tmp_path / "rel"), "--job", str(tmp_path / "job.toml")],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    params = load_release_inputs(tmp_path / "rel" / "release.toml").enclave
    assert params.rpc_workers == 4 and params.enclave_size == size == enclave_size_for(need)
    manifest = tomllib.loads(render_release_manifest(params, trusted=("venv/bin/python3",)))
    assert manifest["sgx"]["enclave_size"] == size
    argv = manifest["loader"]["argv"]
    assert int(argv[argv.index("--enclave-mib") + 1]) << 20 >= need  # the node checks the job against it


def test_a_strategy_that_holds_every_update_needs_an_enclave_that_grows_with_the_owners() -> None:
    def need(strategy: AggregationStrategy, owners: int) -> int:
        return enclave_memory_bytes(strategy, model_bytes=50 * MIB, updates=owners, rpc_workers=32)

    assert need(FedAvg(weighted=False), 20) == need(FedAvg(weighted=False), 2)  # streaming: one slot
    assert need(TrimmedMean(), 20) - need(TrimmedMean(), 2) >= 18 * 50 * MIB  # every update held until the close


def test_a_job_that_fits_is_accepted_and_its_need_returned() -> None:
    job = job_with_model(10)

    need = check_job_fits_enclave(job, enclave_bytes=1 << 30, rpc_workers=32)

    assert need == job_enclave_bytes(job, rpc_workers=32) < 1 << 30


def test_a_job_too_big_for_the_enclave_is_refused_with_both_numbers() -> None:
    job = job_with_model(300)
    need = job_enclave_bytes(job, rpc_workers=32)

    with pytest.raises(EnclaveTooSmall) as refused:
        check_job_fits_enclave(job, enclave_bytes=1 << 30, rpc_workers=32)

    assert f"needs {need / MIB:.0f} MiB" in str(refused.value) and "signed with 1024 MiB" in str(refused.value)
    assert isinstance(refused.value, MemoryBudgetExceeded)


def test_the_node_refuses_at_start_before_any_quote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The manifest passes --enclave-mib (its sgx.enclave_size); a job that cannot fit must fail now, with both
    # numbers, not halfway through a round when the enclave runs out of memory.
    job = tmp_path / "job.json"  # the canonical form the enclave loads (enclavefl enclave assemble writes it)
    job.write_text(job_with_model(600).canonical_text() + "\n")

    def no_backend(**kwargs: object) -> object:
        raise AssertionError("the node opened its TEE backend for a job it cannot hold")

    monkeypatch.setattr(enclave_main, "gramine_backend", no_backend)
    status = enclave_main.main(["--job", str(job), "--collateral", str(tmp_path / "c.json"), "--enclave-mib", "1024"])

    assert status == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "EnclaveTooSmall" in err and "1024 MiB" in err
    assert f"{job_enclave_bytes(job_with_model(600), rpc_workers=4) / MIB:.0f} MiB" in err  # the default

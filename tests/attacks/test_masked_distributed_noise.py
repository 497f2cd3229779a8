"""Masked DP jobs with distributed Skellam noise: every sum the enclave unmasks is already private (issue 22, item 2).

The enclave memory reader is the hook on `recover_sum_inplace` that test_masked_unmask_once.py uses: it records
every plain sum the enclave ever held. With `secure_aggregation.noise = "skellam"` the owners noise their encoded
updates before masking, so that sum differs from the noise-free sum by noise of the job's scale, and the enclave adds
nothing more (the released mean is the unmasked sum over n). Through the node over gRPC/TLS, such a job still learns.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from dp_tables import dp_table
from skellam_jobs import sums, with_honest_schedule
from test_masked_unmask_once import DATA, OWNERS, TASK, make_parties, run_node_life
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.jobfile import load_job
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import EpsilonScheduleMismatch
from enclavefl.owner import masked_owner
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.privacy.epsilon import epsilon_schedule, job_epsilon_schedule, verify_epsilon_schedule
from enclavefl.secagg.masking import MaskingSession
from enclavefl.task import TorchTask
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState
from enclavefl.transport.owner_tls import OwnerCredentials

__all__ = ["sums"]  # the fixture, used by name
pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(240)]


def test_a_masked_dp_job_with_owner_noise_learns_through_the_node(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
    tmp_path: Path,
    sums: list[npt.NDArray[np.float64]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parties = make_parties(sim_enclave, tmp_path, rounds=6)
    spec = dataclasses.replace(parties.job.secure_aggregation, noise="skellam")
    job = with_honest_schedule(
        dataclasses.replace(parties.job, secure_aggregation=spec, dp=dp_table(6, clip_norm=1.0, noise_multiplier=0.05))
    )
    parties = dataclasses.replace(parties, job=job)
    noised: list[str] = []  # the owner (its thread) of each noised update
    masked: list[bool] = []  # per masked update: had its owner noised exactly as many updates as it masked?
    masked_by: list[str] = []
    add_noise, mask = masked_owner.add_owner_noise_inplace, MaskingSession.mask_inplace

    def counting(encoded: npt.NDArray[np.unsignedinteger[Any]], **kwargs: Any) -> None:
        noised.append(threading.current_thread().name)
        add_noise(encoded, **kwargs)

    def masking(session: MaskingSession, encoded: npt.NDArray[np.unsignedinteger[Any]]) -> None:
        owner = threading.current_thread().name
        masked.append(noised.count(owner) == 1 + masked_by.count(owner))
        masked_by.append(owner)
        mask(session, encoded)

    monkeypatch.setattr(masked_owner, "add_owner_noise_inplace", counting)
    monkeypatch.setattr(MaskingSession, "mask_inplace", masking)
    node = run_node_life(parties)
    assert node.node_status().job_state is JobState.FINISHED
    assert len(sums) == job.rounds  # one unmasked sum per round, each carrying the owners' noise
    # every owner noised every upload before masking it (a round re-opened under load adds uploads, each noised)
    assert all(masked) and len(masked) == len(noised) >= job.rounds * len(job.data_owners)
    final = decode_weights(node.final_model_bytes())

    def loss(weights: ModelWeights) -> float:
        model = TASK.create_model()
        load_weights_into(model, weights)
        with torch.no_grad():
            return sum(float(torch.nn.functional.mse_loss(model(d.x), d.y, reduction="sum")) for d in DATA.values())

    assert loss(final) < 0.8 * loss(parties.initial)


def wide_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 128), torch.nn.Linear(128, 1))  # 513 coordinates to measure


WIDE_TASK = TorchTask(model_factory=wide_model, loss_fn=torch.nn.functional.mse_loss)


@pytest.fixture
def clipped(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[npt.NDArray[np.float64]]]:
    """Each owner's clipped update, in upload order, as the owner computes it before anything else is added."""
    seen: dict[str, list[npt.NDArray[np.float64]]] = {}
    clip = masked_owner.clip_inplace

    def recording(vector: npt.NDArray[np.float64], clip_norm: float) -> bool:
        result = clip(vector, clip_norm)
        seen.setdefault(threading.current_thread().name, []).append(vector.copy())
        return result

    monkeypatch.setattr(masked_owner, "clip_inplace", recording)
    return seen


def test_the_enclave_memory_reader_sees_only_noised_sums_in_a_masked_dp_job_with_default_settings(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
    tmp_path: Path,
    sums: list[npt.NDArray[np.float64]],
    clipped: dict[str, list[npt.NDArray[np.float64]]],
) -> None:
    """Issue 22: masked mode exists against a reader of enclave memory. A masked DP job that names no noise
    mechanism (the defaults) must hand the enclave sums that already carry the DP noise at the job's scale:
    n owners' Skellam shares of variance (sigma C)^2 / K each. Before the fix the default was central noise, added
    by the enclave after unmasking, so every sum the reader saw was the owners' exact clipped updates added up."""
    sigma, rounds = 0.3, 2
    parties = make_parties(sim_enclave, tmp_path, rounds=rounds)
    initial = weights_from_module(wide_model())
    job = with_honest_schedule(  # the schedule an honest job states for its (default) mechanism: owners verify it
        dataclasses.replace(
            parties.job,
            model_schema=initial.schema,
            initial_model_sha256=initial.sha256().hex(),
            secure_aggregation=SecureAggregationSpec(degree=2, threshold=2),  # every parameter left at its default
            dp=dp_table(rounds, clip_norm=1.0, noise_multiplier=sigma),
        )
    )
    node = run_node_life(dataclasses.replace(parties, job=job, initial=initial), task=WIDE_TASK)

    assert node.node_status().job_state is JobState.FINISHED
    assert len(sums) == rounds and sorted(clipped) == sorted(OWNERS)
    exact = [np.sum([clipped[name][r] for name in OWNERS], axis=0) for r in range(rounds)]
    noise = np.concatenate([sums[r] - exact[r] for r in range(rounds)])
    expected = len(OWNERS) * sigma**2 / job.min_contributions  # n shares of (sigma C)^2 / K, C = 1
    # 1,026 coordinates estimate the variance within ~5% (one standard error); noise-free sums give ~1e-10
    assert 0.75 < float(noise.var()) / expected < 1.33, f"the reader saw sums with noise variance {noise.var():.3g}"
    assert abs(float(noise.mean())) < 6 * np.sqrt(expected / noise.size)


def test_a_masked_dp_job_written_by_job_init_runs_and_every_owner_accepts_its_schedule(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], tmp_path: Path, sums: list[npt.NDArray[np.float64]]
) -> None:
    """`enclavefl job init --masked --dp-noise-multiplier` writes [secure_aggregation] with the owners' Skellam
    noise and the Skellam schedule; the owners verify that schedule (before they attest) and the job runs."""
    parties = make_parties(sim_enclave, tmp_path, rounds=2)
    model = tmp_path / "init.safetensors"
    model.write_bytes(encode_weights(parties.initial))
    args = ["job", "init", "--name", "cli-masked", "--model", str(model), "--out", str(tmp_path / "job.toml")]
    for name in OWNERS:
        (tmp_path / f"{name}.pem").write_bytes(parties.creds[name].certificate_pem)
        args += ["--owner", f"{name}={tmp_path / f'{name}.pem'}"]
    (tmp_path / "mo.pem").write_bytes(OwnerCredentials.generate("model-owner").certificate_pem)
    args += ["--model-owner-cert", str(tmp_path / "mo.pem"), "--rounds", "2", "--deadline", "16"]
    args += ["--local-steps", "3", "--batch-size", "1", "--masked", "--dp-noise-multiplier", "0.05"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "distributed Skellam noise" in result.output
    job = load_job(tmp_path / "job.toml")
    assert job.secure_aggregation is not None and job.secure_aggregation.noise == "skellam"
    assert job.dp is not None and tuple(job.dp["epsilon_schedule"]) == job_epsilon_schedule(job)  # type: ignore[arg-type]
    SitePolicy(allow_simulated_enclave=True).check_job(job, parties.policy)  # an owner's default limits accept it
    central = dataclasses.replace(  # the same job stating the central schedule understates its cost: refused
        job, dp={**job.dp, "epsilon_schedule": list(epsilon_schedule(noise_multiplier=0.05, delta=1e-5, rounds=2))}
    )
    with pytest.raises(EpsilonScheduleMismatch, match="distributed Skellam"):
        verify_epsilon_schedule(central)
    node = run_node_life(dataclasses.replace(parties, job=job))  # each owner verifies the schedule before attesting
    assert node.node_status().job_state is JobState.FINISHED
    assert len(sums) == job.rounds


def test_job_init_warns_loudly_when_the_noise_is_added_after_unmasking(tmp_path: Path) -> None:
    initial = weights_from_module(wide_model())
    model = tmp_path / "init.safetensors"
    model.write_bytes(encode_weights(initial))
    args = ["job", "init", "--name", "central", "--model", str(model), "--out", str(tmp_path / "job.toml")]
    for name in OWNERS:
        (tmp_path / f"{name}.pem").write_bytes(OwnerCredentials.generate(name).certificate_pem)
        args += ["--owner", f"{name}={tmp_path / f'{name}.pem'}"]
    (tmp_path / "mo.pem").write_bytes(OwnerCredentials.generate("model-owner").certificate_pem)
    args += ["--model-owner-cert", str(tmp_path / "mo.pem"), "--masked", "--dp-noise-multiplier", "1.0"]

    result = CliRunner().invoke(app, [*args, "--masked-noise", "insecure_central"])

    assert result.exit_code == 0, result.output
    assert "WARNING: INSECURE" in result.output and "noise-free sum" in result.output
    assert load_job(tmp_path / "job.toml").secure_aggregation.noise == "insecure_central"  # type: ignore[union-attr]

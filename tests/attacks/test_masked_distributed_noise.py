"""Masked DP jobs with distributed Skellam noise: every sum the enclave unmasks is already private (issue 22, item 2).

The enclave memory reader is the hook on `recover_sum_inplace` that test_masked_unmask_once.py uses: it records
every plain sum the enclave ever held. With `secure_aggregation.noise = "skellam"` the owners noise their encoded
updates before masking, so that sum differs from the noise-free sum by noise of the job's scale, and the enclave adds
nothing more (the released mean is the unmasked sum over n). Through the node over gRPC/TLS, such a job still learns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from dp_tables import dp_table
from test_masked_unmask_once import DATA, TASK, make_parties, run_node_life

from enclavefl.core.codec import decode_weights
from enclavefl.core.job import JobSpec
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.torch_adapter import load_weights_into
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.masked import round as masked_round
from enclavefl.owner import masked_owner
from enclavefl.privacy.epsilon import job_epsilon_schedule, verify_epsilon_schedule
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(240)]
OWNERS = [f"owner-{i}" for i in range(5)]
K = 3
SIGMA = 0.8
SPEC = SecureAggregationSpec(degree=4, threshold=3, scale=float(1 << 16), clip_norm=1.0, noise="skellam")
CODEC = FixedPoint(scale=SPEC.scale, bits=SPEC.modulus_bits)
SIZE = 4000


def with_honest_schedule(job: JobSpec) -> JobSpec:
    assert job.dp is not None
    job = dataclasses.replace(job, dp={**job.dp, "epsilon_schedule": list(job_epsilon_schedule(job))})
    verify_epsilon_schedule(job)  # what every owner runs before it attests
    return job


@pytest.fixture
def sums(monkeypatch: pytest.MonkeyPatch) -> list[npt.NDArray[np.float64]]:
    """The enclave memory reader: every unmasked sum, decoded."""
    seen: list[npt.NDArray[np.float64]] = []
    unmask = masked_round.recover_sum_inplace

    def recording(masked_sum: npt.NDArray[np.unsignedinteger[Any]], **kwargs: Any) -> None:
        unmask(masked_sum, **kwargs)
        seen.append(CODEC.decode(masked_sum.copy()))

    monkeypatch.setattr(masked_round, "recover_sum_inplace", recording)
    return seen


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
    noised: list[int] = []
    add_noise = masked_owner.add_owner_noise_inplace

    def counting(encoded: npt.NDArray[np.unsignedinteger[Any]], **kwargs: Any) -> None:
        noised.append(encoded.size)
        add_noise(encoded, **kwargs)

    monkeypatch.setattr(masked_owner, "add_owner_noise_inplace", counting)
    node = run_node_life(parties)
    assert node.node_status().job_state is JobState.FINISHED
    assert len(sums) == job.rounds  # one unmasked sum per round, each carrying the owners' noise
    assert len(noised) == job.rounds * len(job.data_owners)  # every owner noised every upload before masking
    final = decode_weights(node.final_model_bytes())

    def loss(weights: ModelWeights) -> float:
        model = TASK.create_model()
        load_weights_into(model, weights)
        with torch.no_grad():
            return sum(float(torch.nn.functional.mse_loss(model(d.x), d.y, reduction="sum")) for d in DATA.values())

    assert loss(final) < 0.8 * loss(parties.initial)

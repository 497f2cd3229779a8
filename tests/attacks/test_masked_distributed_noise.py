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
from skellam_jobs import sums, with_honest_schedule
from test_masked_unmask_once import DATA, TASK, make_parties, run_node_life

from enclavefl.core.codec import decode_weights
from enclavefl.core.torch_adapter import load_weights_into
from enclavefl.core.weights import ModelWeights
from enclavefl.owner import masked_owner
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.api import JobState

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

"""A masked DP job with distributed Skellam noise, and the enclave memory reader, for the tests that use both.

    from skellam_jobs import K, SPEC, SIGMA, sums, with_honest_schedule     # `sums`: a pytest fixture

The reader is the hook on `recover_sum_inplace` (as in tests/attacks/test_masked_unmask_once.py): it records every
plain sum the enclave ever held, decoded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from enclavefl.core.job import JobSpec
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.enclave.masked import round as masked_round
from enclavefl.privacy.epsilon import job_epsilon_schedule, verify_epsilon_schedule
from enclavefl.secagg.fixedpoint import FixedPoint

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

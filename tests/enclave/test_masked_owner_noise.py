"""Masked DP jobs with distributed Skellam noise, in the secure worker: each sum the enclave unmasks is private.

The secure worker driven directly (no node, no transport), with the memory reader of tests/skellam_jobs.py (the
`sums` fixture): the unmasked sum differs from the noise-free one by the owners' noise at the job's scale, and the
enclave adds none of its own. The same reader over gRPC/TLS, and a job that learns through the node, are in
tests/attacks/test_masked_distributed_noise.py.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from dp_tables import dp_table
from skellam_jobs import CODEC, OWNERS, SIGMA, SIZE, SPEC, K, sums, with_honest_schedule
from two_phase import close_and_release

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.sealing import privacy_spent
from enclavefl.enclave.worker import SecureWorker
from enclavefl.privacy.distributed import SkellamSource, add_owner_noise_inplace, owner_variance
from enclavefl.secagg.graph import graph_seed
from enclavefl.secagg.masking import MaskingSession
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

__all__ = ["sums"]  # the fixture, used by name
pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(240)]


def test_the_sum_the_enclave_unmasks_carries_the_owners_noise_at_the_jobs_scale(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], sums: list[npt.NDArray[np.float64]]
) -> None:
    initial = ModelWeights({"w": np.zeros(SIZE, dtype=np.float32)})
    job = with_honest_schedule(
        JobSpec(
            name="masked-skellam",
            rounds=2,
            train=TrainConfig(local_steps=1),
            strategy=StrategySpec(name="fedavg", params={"weighted": False}),
            min_contributions=K,
            data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
            model_schema=initial.schema,
            initial_model_sha256=initial.sha256().hex(),
            secure_aggregation=SPEC,
            dp=dp_table(2, clip_norm=1.0, noise_multiplier=SIGMA),
        )
    )
    worker = SecureWorker(job=job, initial_model=initial)
    assert worker.masked is not None
    rng = np.random.default_rng(3)  # test data only; the noise and the masks come from ChaCha20 / AES-CTR
    updates = {n: (lambda d: d / max(1.0, float(np.linalg.norm(d))))(rng.uniform(-0.02, 0.02, SIZE)) for n in OWNERS}
    variance = owner_variance(noise_multiplier=SIGMA, dp_clip=1.0, scale=SPEC.scale, min_contributors=K)
    r = worker.open_round()
    context = graph_seed(job_digest=job.digest(), round_index=r, attempt=worker.masked.attempt(r))
    sessions = {n: MaskingSession(owner=n, spec=SPEC, context=context, min_survivors=K) for n in OWNERS}
    for name in OWNERS:
        worker.masked.advertise(r, sessions[name].advertisement())
    worker.masked.close_phase(r, "keys")
    for name in OWNERS:
        worker.masked.submit_bundles(r, name, sessions[name].share_bundles(worker.masked.roster(r)))
    worker.masked.close_phase(r, "shares")
    for i, name in enumerate(OWNERS):  # each owner as MaskedOwner.upload does it: encode, noise, mask
        sessions[name].receive_bundles(worker.masked.bundles_for(r, name))
        encoded = CODEC.encode(updates[name])
        add_owner_noise_inplace(encoded, source=SkellamSource(key=bytes([i + 1]) * 32), variance=variance)
        sessions[name].mask_inplace(encoded)
        worker.masked.submit(
            UpdateMessage.of(owner=name, round=r, num_examples=1, payload=encoded.tobytes()).incoming()
        )
    worker.masked.close_phase(r, "uploads")
    survivors = worker.masked.survivors(r)
    for name in OWNERS:
        worker.masked.submit_answer(r, sessions[name].unmask_shares(survivors))
    close_and_release(worker)

    assert len(sums) == 1
    noise = sums[0] - np.sum(list(updates.values()), axis=0)
    expected = len(OWNERS) * (SIGMA * 1.0) ** 2 / K  # n owners' shares, each (sigma C)^2 / K, in real units
    # 4000 coordinates estimate the variance within ~7% (3 standard errors); a 2x error in either way fails
    assert 0.8 < float(noise.var()) / expected < 1.25
    assert abs(float(noise.mean())) < 6 * np.sqrt(expected / SIZE)
    # the enclave adds no central noise on top: the released mean is exactly the unmasked (noised) sum over n
    released = np.asarray(worker.global_model["w"], dtype=np.float64)
    assert np.max(np.abs(released - sums[0] / len(OWNERS))) < 1e-6
    spent = privacy_spent(worker.strategy)
    assert spent is not None and spent.epsilon == job.dp["epsilon_schedule"][0]  # type: ignore[index]

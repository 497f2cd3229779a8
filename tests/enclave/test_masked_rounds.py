"""Masked mode in the secure worker: the released model is the mean of the survivors' updates, whoever drops out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from two_phase import close_and_release

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.messages import RoundPhase
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.update import IncomingUpdate, UpdateHeader
from enclavefl.core.update_message import UpdateMessage, new_commitment_salt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.masked import MaskedMode
from enclavefl.enclave.sealing import privacy_spent
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import MaskedRoundLost, MaskingRefused, NotEnoughContributions
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.graph import graph_seed
from enclavefl.secagg.masking import MaskingSession
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

OWNERS = [f"owner-{i}" for i in range(7)]
SPEC = SecureAggregationSpec(degree=4, threshold=3, scale=float(1 << 16), modulus_bits=64, clip_norm=1.0)
CODEC = FixedPoint(scale=SPEC.scale, bits=SPEC.modulus_bits)


def initial() -> ModelWeights:
    return ModelWeights({"w": np.zeros((3, 4), dtype=np.float32), "steps": np.array([7], dtype=np.int64)})


@pytest.fixture
def worker(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> SecureWorker:
    model = initial()
    job = JobSpec(
        name="masked",
        rounds=2,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=3,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=model.schema,
        initial_model_sha256=model.sha256().hex(),
        secure_aggregation=SPEC,
    )
    return SecureWorker(job=job, initial_model=model)


def masked(worker: SecureWorker) -> MaskedMode:
    """The worker's one door to masked mode (loaded for this masked job only)."""
    assert worker.masked is not None
    return worker.masked


def deltas() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)  # test data only: every mask comes from AES-CTR
    out = {}
    for name in OWNERS:
        d = rng.uniform(-1, 1, 12)
        out[name] = d / max(1.0, float(np.linalg.norm(d)))  # clipped to 1, as the owners do
    return out


def run_masked(worker: SecureWorker, updates: dict[str, np.ndarray], *, absent: dict[str, str]) -> None:
    """The owners' four steps; absent[owner] is the first step it misses."""
    r = worker.open_round()
    context = graph_seed(job_digest=worker.job.digest(), round_index=r, attempt=masked(worker).attempt(r))
    sessions = {n: MaskingSession(owner=n, spec=SPEC, context=context, min_survivors=3) for n in updates}
    present = [n for n in updates if absent.get(n) != "advertise"]
    for name in present:
        masked(worker).advertise(r, sessions[name].advertisement())
    masked(worker).close_phase(r, "keys")
    present = [n for n in present if absent.get(n) != "share"]
    for name in present:
        masked(worker).submit_bundles(r, name, sessions[name].share_bundles(masked(worker).roster(r)))
    masked(worker).close_phase(r, "shares")
    present = [n for n in present if absent.get(n) != "upload"]
    for name in present:
        sessions[name].receive_bundles(masked(worker).bundles_for(r, name))
        encoded = CODEC.encode(updates[name])
        sessions[name].mask_inplace(encoded)
        payload = encoded.tobytes()
        message = UpdateMessage.of(owner=name, round=r, num_examples=1, payload=payload)
        masked(worker).submit(message.incoming())
    masked(worker).close_phase(r, "uploads")
    survivors = masked(worker).survivors(r)
    for name in [n for n in present if absent.get(n) != "unmask"]:
        masked(worker).submit_answer(r, sessions[name].unmask_shares(survivors))


def released_delta(worker: SecureWorker) -> np.ndarray:
    return np.asarray(worker.global_model["w"], dtype=np.float64).reshape(-1)


def test_masked_round_releases_the_mean_of_every_update(worker: SecureWorker) -> None:
    updates = deltas()
    run_masked(worker, updates, absent={})
    summary = close_and_release(worker)
    expected = np.mean(list(updates.values()), axis=0)
    assert summary.contributions == len(OWNERS)
    assert np.max(np.abs(released_delta(worker) - expected)) <= CODEC.sum_error_bound(len(OWNERS)) / len(OWNERS) + 1e-7
    assert worker.global_model["steps"].tolist() == [7]  # integer tensors are not averaged in masked mode


def test_owners_dropped_before_and_after_masking_leave_the_survivors_mean(worker: SecureWorker) -> None:
    updates = deltas()
    # owner-1 shared its seeds (its pairwise masks are in its neighbours' inputs) but never uploaded;
    # owner-2 uploaded but never answered the unmasking request; owner-3 never advertised keys.
    run_masked(worker, updates, absent={"owner-1": "upload", "owner-2": "unmask", "owner-3": "advertise"})
    survivors = [n for n in OWNERS if n not in ("owner-1", "owner-3")]
    summary = close_and_release(worker, signers=survivors)
    expected = np.mean([updates[n] for n in survivors], axis=0)
    assert summary.contributions == len(survivors)
    bound = CODEC.sum_error_bound(len(survivors)) / len(survivors) + 1e-7
    assert np.max(np.abs(released_delta(worker) - expected)) <= bound


def test_fewer_than_k_masked_inputs_are_never_unmasked(worker: SecureWorker) -> None:
    updates = deltas()
    absent = {n: "upload" for n in OWNERS[2:]}
    with pytest.raises(NotEnoughContributions, match="no unmasking"):
        run_masked(worker, updates, absent=absent)  # the node's close of the upload phase refuses
    assert worker.status().phase is RoundPhase.WAITING and worker.rounds_completed == 0


def test_an_owner_that_skips_clipping_makes_the_round_release_nothing(worker: SecureWorker) -> None:
    updates = deltas()
    updates["owner-4"] = updates["owner-4"] * 1000.0  # far beyond clip_norm: the sum's bound catches it
    run_masked(worker, updates, absent={})
    with pytest.raises(MaskedRoundLost, match="norm"):
        worker.close_round()
    assert worker.status().phase is RoundPhase.WAITING and worker.rounds_completed == 0
    # its sum was unmasked once: this enclave never opens the round again (a second sum would leak a difference)
    with pytest.raises(MaskedRoundLost, match="never re-opened"):
        worker.open_round()


def test_plaintext_and_malformed_masked_uploads_are_refused(worker: SecureWorker) -> None:
    r = worker.open_round()
    with pytest.raises(MaskingRefused, match="plaintext"):
        worker.submit_update(UpdateMessage.of(owner="owner-0", round=r, num_examples=1, payload=b"x").incoming())
    header = UpdateHeader(
        owner="owner-0", round=r, num_examples=1, commitment_salt=new_commitment_salt(), commitment=bytes(32)
    )
    with pytest.raises(MaskingRefused, match="without having shared"):
        masked(worker).submit(IncomingUpdate(header=header, chunks=(bytes(96),)))
    assert worker.rejections["MaskingRefused"] == 2


def test_keys_after_the_roster_went_out_are_refused(worker: SecureWorker) -> None:
    r = worker.open_round()
    context = graph_seed(job_digest=worker.job.digest(), round_index=r, attempt=masked(worker).attempt(r))
    sessions = {n: MaskingSession(owner=n, spec=SPEC, context=context) for n in OWNERS}
    for name in OWNERS[:-1]:
        masked(worker).advertise(r, sessions[name].advertisement())
    with pytest.raises(MaskingRefused, match="still open"):
        masked(worker).roster(r)  # no owner can read (and so fix) the roster before the node closes the phase
    masked(worker).close_phase(r, "keys")
    masked(worker).roster(r)
    with pytest.raises(MaskingRefused, match="after the roster"):
        masked(worker).advertise(r, sessions[OWNERS[-1]].advertisement())


def test_masked_round_with_central_dp_adds_noise_to_the_sum_and_charges_the_round(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    from dp_tables import dp_table

    model = initial()
    job = JobSpec(
        name="masked-dp",
        rounds=2,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=3,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=model.schema,
        initial_model_sha256=model.sha256().hex(),
        secure_aggregation=dataclasses.replace(SPEC, noise="insecure_central"),  # the enclave adds the noise
        dp=dp_table(2, clip_norm=1.0, noise_multiplier=0.5),
    )
    worker = SecureWorker(job=job, initial_model=model)
    updates = deltas()
    run_masked(worker, updates, absent={})
    close_and_release(worker)
    spent = privacy_spent(worker.strategy)
    assert spent is not None and spent.epsilon > 0
    noise = released_delta(worker) - np.mean(list(updates.values()), axis=0)
    std_on_mean = 0.5 * 1.0 / len(OWNERS)
    assert np.max(np.abs(noise)) > 1e-3  # noise was added (not the exact mean)
    assert np.max(np.abs(noise)) < 8 * std_on_mean  # and calibrated to sigma * C / n, not to one update


def test_a_phase_closed_with_too_few_owners_loses_the_round_and_it_can_reopen(worker: SecureWorker) -> None:
    r = worker.open_round()
    with pytest.raises(NotEnoughContributions, match="advertised"):
        masked(worker).close_phase(r, "keys")
    assert worker.status().phase is RoundPhase.WAITING
    assert worker.open_round() == r and worker.attempt == 2  # re-opened: new attempt, new graph seed

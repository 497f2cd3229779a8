"""Plain FedAvg accumulates inside the next global model's bytes: same bytes, same model, nothing served moves."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from two_phase import close_and_release

from enclavefl.core.codec import decode_weights, encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update import IncomingUpdate, UpdateHeader
from enclavefl.core.update_message import UpdateMessage, new_commitment_salt
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import MalformedUpdate
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy

OWNERS = ("a", "b", "c")


def model(value: float) -> ModelWeights:
    return ModelWeights(
        {
            "w": np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30) * value,
            "b": np.full((30,), value, np.float32),
        }
    )


@pytest.fixture
def worker(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> SecureWorker:
    initial = model(0.5)
    job = JobSpec(
        name="in-place",
        rounds=2,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg", params={"weighted": True}),
        min_contributions=2,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    return SecureWorker(job=job, initial_model=initial)


def message(owner: str, weights: ModelWeights, n: int, round_index: int) -> UpdateMessage:
    return UpdateMessage.of(
        owner=owner,
        round=round_index,
        num_examples=n,
        payload=encode_weights(weights),
        commitment_salt=new_commitment_salt(),
    )


def test_the_released_model_is_plain_fedavg_and_its_bytes_are_the_canonical_encoding(worker: SecureWorker) -> None:
    # prepare: two rounds, weights 1 and 3
    for round_index in (1, 2):
        worker.open_round()
        served = worker.global_model_bytes(round_index)
        served_copy = bytes(served)

        # act
        worker.submit_update(message("a", model(1.0 * round_index), 1, round_index).incoming())
        worker.submit_update(message("b", model(5.0 * round_index), 3, round_index).incoming())
        assert bytes(served) == served_copy  # the bytes being downloaded never change while the round folds
        close_and_release(worker)

        # assert
        expected = {k: (1 * model(1.0 * round_index)[k] + 3 * model(5.0 * round_index)[k]) / 4 for k in ("w", "b")}
        for name, want in expected.items():
            np.testing.assert_allclose(worker.global_model[name], want, rtol=1e-6)
        assert bytes(worker.global_model_bytes(round_index)) == encode_weights(worker.global_model)
        assert not worker.global_model["w"].flags.writeable


def test_a_stream_cut_mid_tensor_is_refused_and_leaves_no_trace_in_the_aggregate(worker: SecureWorker) -> None:
    # prepare: the cut comes after the header and half of the tensor data
    worker.open_round()
    payload = encode_weights(model(100.0))
    cut = len(payload) // 2

    def severed() -> Iterator[bytes]:
        yield payload[:cut]
        raise MalformedUpdate(f"upload aborted after {cut} bytes (sender gone or round closed)")

    # act
    with pytest.raises(MalformedUpdate, match="aborted"):
        header = UpdateHeader(
            owner="c", round=1, num_examples=7, commitment_salt=new_commitment_salt(), commitment=b"\0" * 32
        )
        worker.submit_update(IncomingUpdate(header=header, chunks=severed()))
    worker.submit_update(message("a", model(1.0), 1, 1).incoming())
    worker.submit_update(message("b", model(5.0), 3, 1).incoming())
    summary = close_and_release(worker, signers=["a", "b"])

    # assert: exactly the mean of the two whole updates, bit for bit the canonical bytes of that mean
    assert summary.contributions == 2
    assert summary.rejected == {"MalformedUpdate": 1}
    expected = ModelWeights({k: ((model(1.0)[k] + 3 * model(5.0)[k]) / np.float32(4)) for k in ("b", "w")})
    np.testing.assert_allclose(worker.global_model["w"], expected["w"], rtol=1e-6)
    assert bytes(worker.global_model_bytes(1)) == encode_weights(worker.global_model)


def test_a_canonical_submitted_model_is_kept_as_received_and_any_other_encoding_is_re_encoded(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    # prepare: the canonical bytes, and the same weights with metadata in the header (valid, not canonical)
    initial = model(0.5)
    job = JobSpec(
        name="adopt",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=1,
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )
    canonical = bytearray(encode_weights(initial))
    with_metadata = bytearray(encode_weights(initial, metadata={"note": "x"}))

    # act
    kept = SecureWorker(job=job, initial_model=decode_weights(canonical), initial_model_bytes=canonical)
    redone = SecureWorker(job=job, initial_model=decode_weights(with_metadata), initial_model_bytes=with_metadata)

    # assert: one buffer, not two; the other one served canonically; the model read-only either way
    assert kept.global_model_bytes(0) is canonical
    assert redone.global_model_bytes(0) == encode_weights(initial)
    assert not kept.global_model["w"].flags.writeable

"""Issue 25 item 5: the node serves the released model from its sealed checkpoint, not from a resident copy.

A FedAvg round then holds the accumulator and one staging slot (2x the model); the staging slot is freed at
round close; the host, which owns the disk, cannot change a download without the node saying so; and an upload
cut mid-stream at any byte leaves the aggregate exactly as if it had never been sent.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from two_phase import close_and_release

from enclavefl.core.codec import decode_weights, encode_weights, parse_header
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.update import IncomingUpdate
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.checkpoint import CheckpointStore, NodeCheckpoint
from enclavefl.enclave.global_model import GlobalModel
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CheckpointError, MalformedUpdate, WrongRound

pytestmark = pytest.mark.filterwarnings("ignore")
OWNERS = ("a", "b", "c")


def model(seed: int) -> ModelWeights:
    rng = np.random.default_rng(seed)  # test data, not a secret
    return ModelWeights(
        {
            "layer.w": rng.standard_normal((800, 400)).astype(np.float32),  # 1.3 MB: three sealed chunks
            "layer.b": rng.standard_normal(400).astype(np.float32),
            "head.w": rng.standard_normal((400, 7)).astype(np.float64),
        }
    )


def job(rounds: int = 3) -> JobSpec:
    initial = model(0)
    return JobSpec(
        name="stored",
        rounds=rounds,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedavg"),
        min_contributions=2,
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )


def stored_worker(tmp_path: Path, spec: JobSpec) -> tuple[SecureWorker, CheckpointStore]:
    store = CheckpointStore(tmp_path / "state", sealing_key=os.urandom(16), job_digest=spec.digest())
    worker = SecureWorker(job=spec, initial_model=model(0), checkpoint_sink=store.save_and_open)
    worker.keep_stored_model(store.save_and_open(worker.to_checkpoint()))  # round 0, as the node's lifecycle does
    return worker, store


def submit(worker: SecureWorker, owner: str, weights: ModelWeights, round_index: int, n: int = 1) -> None:
    message = UpdateMessage.of(owner=owner, round=round_index, num_examples=n, payload=encode_weights(weights))
    worker.submit_update(message.incoming())


def test_downloads_come_from_the_sealed_checkpoint_and_the_round_holds_no_global_copy(tmp_path: Path) -> None:
    spec = job()
    worker, _ = stored_worker(tmp_path, spec)
    served = worker.global_model_bytes(0)
    assert isinstance(served, StoredModel)
    assert bytes(served) == encode_weights(model(0))

    worker.open_round()
    assert not worker._global.resident  # the accumulator took its place: global + accumulator + slot never meet
    assert bytes(worker.global_model_bytes(1)) == encode_weights(model(0))  # read back from disk
    submit(worker, "a", model(1), 1, n=3)
    submit(worker, "b", model(2), 1, n=1)
    assert worker._ingest._pool.allocated == 1
    summary = close_and_release(worker, OWNERS)
    assert worker._ingest._pool.allocated == 0  # the staging slot is freed at round close

    released = worker.released_model_bytes(1)
    assert isinstance(released, StoredModel) and released.rounds == 1
    weights = decode_weights(bytes(released))
    assert (
        weights.sha256().hex() == summary.global_model_sha256 == worker.receipts[-1].receipt.global_model_sha256.hex()
    )
    expected = {k: (3 * model(1)[k] + model(2)[k]) / 4 for k in weights}
    for name, value in expected.items():
        np.testing.assert_allclose(weights[name], value, rtol=1e-6)


def test_a_host_that_edits_the_checkpoint_mid_download_is_caught_at_the_chunk(tmp_path: Path) -> None:
    worker, store = stored_worker(tmp_path, job())
    served = worker.global_model_bytes(0)
    assert isinstance(served, StoredModel)
    pieces = served.views(64 << 10)
    first = bytes(next(pieces))
    assert first == encode_weights(model(0))[: len(first)]

    path = store.list()[-1]
    with path.open("r+b") as f:  # the host flips one byte far into the model while the download runs
        f.seek(os.path.getsize(path) - 100_000)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))

    with pytest.raises(CheckpointError, match=r"round 0 changed on disk: .*chunk \d+ of \d+ .*fails authentication"):
        for _ in pieces:
            pass


def test_a_checkpoint_renamed_over_the_served_one_changes_nothing(tmp_path: Path) -> None:
    spec = job()
    worker, store = stored_worker(tmp_path, spec)
    served = worker.global_model_bytes(0)
    genuine = store.list()[-1]
    stored_worker(tmp_path / "other", spec)  # another valid checkpoint of the same job
    os.replace(sorted((tmp_path / "other" / "state").glob("checkpoint-*.sealed"))[-1], genuine)

    assert bytes(served) == encode_weights(model(0))  # the node reads through the file it sealed, not the name
    with pytest.raises(CheckpointError, match="not the checkpoint this node sealed"):
        store.open_model(genuine)


def test_a_node_resumed_while_signing_never_serves_the_pending_aggregate_as_released(tmp_path: Path) -> None:
    spec = job()
    worker, store = stored_worker(tmp_path, spec)
    worker.open_round()
    submit(worker, "a", model(1), 1)
    submit(worker, "b", model(2), 1)
    close_and_release(worker, OWNERS)
    released = bytes(worker.released_model_bytes(1))
    worker.open_round()
    submit(worker, "a", model(4), 2)
    submit(worker, "b", model(5), 2)
    worker.close_round()  # round 2 sealed (its checkpoint has `pending` set), waiting for signatures: a crash

    fresh = CheckpointStore(store.directory, sealing_key=store._key, job_digest=spec.digest())
    checkpoint = fresh.load_latest()
    assert checkpoint is not None and checkpoint.pending is not None
    resumed = SecureWorker.from_checkpoint(checkpoint, job=spec)
    with pytest.raises(WrongRound, match="not on this node since its restart"):
        resumed.released_model_bytes(1)  # before the fix: round 2's unsigned aggregate, to the model owner

    resumed.keep_stored_model(fresh.open_model(fresh.directory / "checkpoint-00000001.sealed", any_sealed=True))
    assert bytes(resumed.released_model_bytes(1)) == released  # the released model, from its own checkpoint
    resumed.keep_stored_model(fresh.open_model(fresh.directory / "checkpoint-00000002.sealed", any_sealed=True))
    assert bytes(resumed.released_model_bytes(1)) == released  # another round's checkpoint is not taken for it
    other = fresh.open_model(fresh.directory / "checkpoint-00000002.sealed", any_sealed=True)
    with pytest.raises(CheckpointError, match="does not hold the model released then"):  # a model of another hash
        GlobalModel.of_stored(other, schema=model(0).schema, sha256_hex=model(0).sha256().hex())


class Cut(Exception):
    """The connection dropped (what a cut gRPC stream raises into the handler's request iterator)."""


def cut_stream(payload: bytes, at: int, *, how: str) -> Iterator[bytes]:
    for start in range(0, at, 4096):
        yield payload[start : min(start + 4096, at)]
    if how == "raise":
        raise Cut(f"stream cut after {at} bytes")


def aggregate(tmp_path: Path, cut_at: int | None, how: str = "end") -> ModelWeights:
    spec = job()
    worker, _ = stored_worker(tmp_path, spec)
    worker.open_round()
    submit(worker, "a", model(1), 1, n=2)
    if cut_at is not None:
        payload = encode_weights(model(3))
        message = UpdateMessage.of(owner="c", round=1, num_examples=5, payload=payload)
        header = message.incoming().header
        with pytest.raises((MalformedUpdate, Cut)):
            worker.submit_update(IncomingUpdate(header=header, chunks=cut_stream(payload, cut_at, how=how)))
    submit(worker, "b", model(2), 1, n=1)
    close_and_release(worker, OWNERS)
    return decode_weights(bytes(worker.global_model_bytes(1)))


def test_an_upload_cut_at_any_byte_leaves_no_trace_in_the_sum(tmp_path: Path) -> None:
    clean = aggregate(tmp_path / "clean", None)
    payload = encode_weights(model(3))
    data_start = parse_header(payload).data_start
    offsets = [1, 8, data_start - 1, data_start, data_start + 1, data_start + 4096 * 3 + 17, len(payload) - 1]
    for i, at in enumerate(offsets):
        for how in ("end", "raise"):
            cut = aggregate(tmp_path / f"{i}-{how}", at, how)
            for name in clean:  # bit for bit: not one partial tensor of the cut stream reached the accumulator
                assert np.array_equal(cut[name], clean[name]), (at, how, name)


def test_checkpoint_pieces_are_views_not_copies(tmp_path: Path) -> None:
    spec = job()
    store = CheckpointStore(tmp_path, sealing_key=os.urandom(16), job_digest=spec.digest())
    checkpoint = NodeCheckpoint(
        job_digest=spec.digest(), rounds_completed=0, global_model=model(0), identity_key_der=b"k"
    )
    stored = store.save_and_open(checkpoint)
    assert len(stored) == len(encode_weights(model(0)))
    assert all(len(v) <= 1000 for v in stored.views(1000))


def test_a_tiny_model_stays_resident_and_is_served_from_memory(tmp_path: Path) -> None:
    tiny = ModelWeights({"w": np.arange(6, dtype=np.float32)})
    spec = dataclasses.replace(job(), model_schema=tiny.schema, initial_model_sha256=tiny.sha256().hex())
    store = CheckpointStore(tmp_path, sealing_key=os.urandom(16), job_digest=spec.digest())
    worker = SecureWorker(job=spec, initial_model=tiny, checkpoint_sink=store.save_and_open)
    worker.keep_stored_model(store.save_and_open(worker.to_checkpoint()))
    worker.open_round()
    # a status that inlines it must not read and decrypt a file for every owner that asks
    assert worker._global.resident and isinstance(worker.global_model_bytes(1), bytes | bytearray)

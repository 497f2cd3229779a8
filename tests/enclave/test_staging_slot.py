"""The node's staging slot is made when a round opens, off the first upload's path, and freed when the round closes.

Issue 25 item 4: making the slot (a model's worth of pages faulted in) inside the round's first upload put 0.06-0.9 s
into that upload's window. These tests run the real node (gRPC over TLS on loopback) and watch its staging pool;
`makes` records every buffer the pool allocates and on which thread, and can hold an allocation open to close a
round while its slot is still being made. The round clock is injected, so a round closes when a test says so.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "transport"))
from transport_harness import (
    Federation,
    federation_factory,
    model,
    sign_sealed_round,
    stalled_upload,
    update,
    wait_open,
)

from enclavefl.core.codec import encode_weights
from enclavefl.enclave import staging
from enclavefl.enclave.checkpoint import CheckpointStore
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.staging import StagingPool
from enclavefl.transport.api import JobState

__all__ = ["federation_factory"]
pytestmark = pytest.mark.filterwarnings("ignore")
DEADLINE = 30.0  # the harness's round deadline, on the injected clock
MAKER = "enclavefl-staging"  # the thread the pool makes a round's slot on


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def pass_deadline(self) -> None:
        self.now += DEADLINE + 1.0


@dataclass
class Makes:
    """The names of the threads that allocated a staging buffer, in order; `gate` cleared holds allocations open."""

    threads: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def makes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Makes]:
    record = Makes()
    record.gate.set()
    real = staging._new_buffer

    def recorded(nbytes: int) -> staging.Array:
        record.threads.append(threading.current_thread().name)
        record.gate.wait(30)
        return real(nbytes)

    monkeypatch.setattr(staging, "_new_buffer", recorded)
    yield record
    record.gate.set()  # never leave a maker thread blocked


def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def pool_of(node: AggregatorNode) -> StagingPool:
    assert node.worker is not None
    return node.worker._ingest._pool


def ready(pool: StagingPool) -> bool:
    """A slot exists and is free: made, its pages faulted in, waiting for an upload."""
    return pool.allocated == 1 and pool._free.qsize() == 1


def test_the_slot_is_made_when_the_round_opens_before_any_upload_and_the_upload_uses_it(
    federation_factory: Callable[..., Federation], makes: Makes
) -> None:
    fed = federation_factory(rounds=1)
    node = fed.node(monotonic=Clock())
    wait_open(node, 1)
    pool = pool_of(node)

    eventually(lambda: ready(pool), "no staging slot was ready after round 1 opened (no upload yet)")
    assert makes.threads == [MAKER]  # on a thread of its own: not an upload's, not the event loop's
    fed.connect(node, "alice").client.upload_update(update("alice", 1, 1.0))

    assert node.node_status().contributions == 1
    assert makes.threads == [MAKER] and pool.allocated == 1  # the upload was staged in it: nothing made again


def test_an_upload_that_comes_before_the_slot_is_ready_waits_for_it(
    federation_factory: Callable[..., Federation], makes: Makes
) -> None:
    makes.gate.clear()  # the slot's pages take their time
    fed = federation_factory(rounds=1)
    node = fed.node(monotonic=Clock())
    alice = fed.connect(node, "alice")
    wait_open(node, 1)
    eventually(lambda: makes.threads == [MAKER], "round 1 did not start making its slot")
    uploading = threading.Thread(target=alice.client.upload_update, args=(update("alice", 1, 1.0),))

    uploading.start()
    assert node.server is not None
    eventually(lambda: node.server.servicer._intake.started == 1, "the upload did not reach the node")  # type: ignore[union-attr]
    time.sleep(0.2)  # let it reach the staging pool (what follows holds whenever it does)
    assert node.node_status().contributions == 0
    makes.gate.set()
    uploading.join(15)

    assert node.node_status().contributions == 1
    assert makes.threads == [MAKER] and pool_of(node).allocated == 1  # made once, by the round, not by the upload


def test_a_round_that_fails_after_an_upload_frees_its_slot(
    federation_factory: Callable[..., Federation],
) -> None:
    fed = federation_factory(rounds=1, on_round_failure="stop")
    clock = Clock()
    node = fed.node(monotonic=clock)
    wait_open(node, 1)
    fed.connect(node, "alice").client.upload_update(update("alice", 1, 1.0))  # 1 < K = 2
    assert pool_of(node).allocated == 1

    clock.pass_deadline()
    status = node.wait(timeout=15)

    assert status.job_state is JobState.FAILED and "round 1 failed" in status.job_message
    assert pool_of(node).allocated == 0  # before: the slot of a failed round stayed for the node's lifetime


def test_a_round_with_no_upload_frees_its_slot_at_close_and_its_retry_makes_one(
    federation_factory: Callable[..., Federation], makes: Makes
) -> None:
    fed = federation_factory(rounds=1, on_round_failure="retry", max_round_attempts=2)
    clock = Clock()
    node = fed.node(monotonic=clock)
    wait_open(node, 1)
    pool = pool_of(node)
    eventually(lambda: ready(pool), "no staging slot after round 1 opened")

    clock.pass_deadline()  # nobody uploaded: attempt 1 fails and closes
    wait_open(node, 1, attempt=2)
    eventually(lambda: ready(pool), "no staging slot after round 1 re-opened")
    assert makes.threads == [MAKER, MAKER]  # attempt 1's was freed at its close; one, not two, for attempt 2
    clock.pass_deadline()
    status = node.wait(timeout=15)

    assert status.job_state is JobState.FAILED
    assert pool.allocated == 0


def test_a_round_that_closes_while_its_slot_is_being_made_frees_it_once_made(
    federation_factory: Callable[..., Federation], makes: Makes
) -> None:
    makes.gate.clear()
    fed = federation_factory(rounds=1, on_round_failure="stop")
    clock = Clock()
    node = fed.node(monotonic=clock)
    wait_open(node, 1)
    eventually(lambda: makes.threads == [MAKER], "round 1 did not start making its slot")
    pool = pool_of(node)

    clock.pass_deadline()
    status = node.wait(timeout=15)  # the round closed (and the job failed) while its slot was being made
    assert status.job_state is JobState.FAILED
    makes.gate.set()

    eventually(lambda: pool.allocated == 0, f"the slot made for a closed round was kept ({pool.allocated})")
    assert pool._free.qsize() == 0 and makes.threads == [MAKER]


def test_a_slot_still_being_made_when_its_round_closes_serves_the_reopened_round_without_a_second(
    federation_factory: Callable[..., Federation], makes: Makes
) -> None:
    makes.gate.clear()
    fed = federation_factory(rounds=1, on_round_failure="retry")
    clock = Clock()
    node = fed.node(monotonic=clock)
    owners = {name: fed.connect(node, name) for name in ("alice", "bob")}
    wait_open(node, 1)
    eventually(lambda: makes.threads == [MAKER], "round 1 did not start making its slot")
    pool = pool_of(node)

    clock.pass_deadline()  # attempt 1 closes while its slot is still being made
    wait_open(node, 1, attempt=2)
    assert pool.allocated == 1  # the one being made: attempt 2 does not start another
    makes.gate.set()
    eventually(lambda: ready(pool), "the slot being made was not handed to the re-opened round")
    for value, (name, owner) in enumerate(owners.items()):
        owner.client.upload_update(update(name, 1, float(value)))
    clock.pass_deadline()
    sign_sealed_round(node, owners, 1)
    status = node.wait(timeout=15)

    assert status.job_state is JobState.FINISHED
    assert makes.threads == [MAKER]  # one buffer for both attempts and both uploads
    assert pool.allocated == 0


def store(directory: Path, fed: Federation) -> CheckpointStore:
    return CheckpointStore(directory, sealing_key=bytes(range(16)), job_digest=fed.job.digest())


def test_a_node_resumed_from_its_checkpoint_makes_the_slot_when_its_next_round_opens(
    federation_factory: Callable[..., Federation], makes: Makes, tmp_path: Path
) -> None:
    fed = federation_factory(rounds=2)
    key = bytes(range(16))
    clock = Clock()
    first = fed.node(
        monotonic=clock, checkpoints=CheckpointStore(tmp_path, sealing_key=key, job_digest=fed.job.digest())
    )
    owners = {name: fed.connect(first, name) for name in ("alice", "bob")}
    wait_open(first, 1)
    for value, (name, owner) in enumerate(owners.items()):
        owner.client.upload_update(update(name, 1, float(value)))
    clock.pass_deadline()
    sign_sealed_round(first, owners, 1)
    wait_open(first, 2)
    first.stop(0)  # the host restarts the node during round 2
    makes.threads.clear()

    resumed = fed.node(initial=False, checkpoints=store(tmp_path, fed))  # round 1 sealed: released on kept signatures
    wait_open(resumed, 2)

    eventually(lambda: ready(pool_of(resumed)), "no staging slot after the resumed node opened round 2")
    assert makes.threads == [MAKER]


def test_a_slot_held_by_an_upload_cut_at_close_is_freed_when_the_upload_lets_go(
    federation_factory: Callable[..., Federation],
) -> None:
    fed = federation_factory(rounds=1)
    clock = Clock()
    node = fed.node(monotonic=clock, staging_slots=2)
    owners = {name: fed.connect(node, name) for name in ("alice", "bob")}
    carol = fed.connect(node, "carol")
    wait_open(node, 1)
    stall = threading.Event()
    payload = encode_weights(model(9.0))

    def carol_uploads() -> None:
        with contextlib.suppress(grpc.RpcError):
            carol.client._stub.UploadUpdate(
                stalled_upload(payload, round_index=1, stall=stall, timeout=30), **carol.client._kw()
            )

    straggler = threading.Thread(target=carol_uploads)
    eventually(lambda: ready(pool_of(node)), "no staging slot after round 1 opened")
    straggler.start()
    eventually(lambda: pool_of(node)._free.qsize() == 0, "carol's upload did not take the round's slot")
    for value, (name, owner) in enumerate(owners.items()):
        owner.client.upload_update(update(name, 1, float(value)))  # in the second slot
    clock.pass_deadline()
    sign_sealed_round(node, owners, 1)
    status = node.wait(timeout=15)
    stall.set()
    straggler.join(15)

    assert status.job_state is JobState.FINISHED and node.receipts()[0].receipt.contributions == 2
    pool = pool_of(node)
    eventually(lambda: pool.allocated == 0, f"a slot outlived its round ({pool.allocated} kept)")  # before: 1

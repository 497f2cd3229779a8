"""bench_ingest's fourth receiver, ssl + node ingest: a plain TLS socket whose bytes go through the node's ingest
steps, from the node's own classes, with `recv_into` writing straight into the staging slot (no message objects,
no copy). What moving the upload's bytes off gRPC's per-message path could reach, doing the same work:

    pool = StagingPool(nbytes=schema.nbytes, slots=1)            # kept after the upload, as the node's is
    sha256, steps = receive_update(tls, job=job, schema=schema, header=header, length=n, pool=pool, fold=fedavg_round)
    # steps: the receiving thread's CPU seconds by step (slot, recv_into, NaN/Inf, digest hand-offs, fold)

The steps are UpdateIngest.staged's and ingest_stream's (enclave/ingest.py, enclave/staging.py), driven from a
socket: the header checks (UpdateIngest.check_header), a slot from a StagingPool (made and faulted in on first use,
as the node's is), the safetensors header parsed and checked against the job's schema, NaN/Inf checked and SHA-256
advanced a window at a time as the bytes land (the digest on its helper thread: hashlib releases the GIL, so it
runs beside the next recv_into), the commitment checked, the fold into a FedAvg accumulator. Only the loop that
drives them is this file's; the enclave has no such reader (a raw upload channel is not built: see
docs/performance.md, "Upload ingest").
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from enclavefl.aggregation.fedavg import FedAvgRound
from enclavefl.core.codec import HEADER_LENGTH_SIZE
from enclavefl.core.commitments import check_commitment
from enclavefl.core.job import JobSpec
from enclavefl.core.update import UpdateHeader
from enclavefl.core.weights import ModelSchema, ModelWeights
from enclavefl.enclave import staging
from enclavefl.enclave.ingest import HEADER_ALLOWANCE, UpdateIngest
from enclavefl.errors import MalformedUpdate, UpdateTooLarge

WINDOW_BYTES = 1 << 20  # bytes received into the slot between two NaN/Inf checks and digest advances


class _Steps:
    """The receiving thread's CPU seconds (time.thread_time) by step: where its share of the work goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.thread_time() - start


def receive_update(
    tls: ssl.SSLSocket,
    *,
    job: JobSpec,
    schema: ModelSchema,
    header: UpdateHeader,
    length: int,
    pool: staging.StagingPool,
    fold: FedAvgRound,
) -> tuple[bytes, dict[str, float]]:
    """Receive `length` payload bytes from `tls` into a slot of `pool`, check and fold them; the payload's SHA-256,
    and the receiving thread's CPU seconds by step. The caller keeps `pool` beyond its window, as the node keeps
    its slot until the round closes (freeing 400 MB of pages is not ingest)."""
    steps = _Steps()
    ingest = UpdateIngest(job=job, schema=schema, staging_slots=1)
    ingest.check_header(header)
    with steps.step("slot made (pages faulted in)"), pool.slot(still_wanted=lambda: None) as buffer:
        pass  # the pool keeps it: the next `slot` hands out the same buffer, as the node's does within a round
    with pool.slot(still_wanted=lambda: None) as buffer:
        with steps.step("recv_into (TLS, kernel copy)"):
            head = _receive_exactly(tls, HEADER_LENGTH_SIZE)
            head += _receive_exactly(tls, staging._header_bytes_needed(head, HEADER_ALLOWANCE) - HEADER_LENGTH_SIZE)
        parsed = staging._checked_header(bytes(head), schema, job.update_size_limit() or schema.nbytes)
        if parsed.total_size != length:
            raise UpdateTooLarge(f"the stream announces {length} bytes, its header {parsed.total_size}")
        checker = staging._FiniteChecker(parsed, buffer)
        small = parsed.data_size <= staging.INLINE_DIGEST_BYTES
        digest = staging._InlineDigest(bytes(head), buffer) if small else staging._BackgroundDigest(bytes(head), buffer)
        try:
            slot, received = buffer.data, 0
            while received < parsed.data_size:
                end = min(received + WINDOW_BYTES, parsed.data_size)
                with steps.step("recv_into (TLS, kernel copy)"):
                    while received < end:
                        n = tls.recv_into(slot[received:end], end - received)
                        if n == 0:
                            raise MalformedUpdate(f"update stream truncated after {received} data bytes")
                        received += n
                with steps.step("NaN/Inf check"):
                    checker.check_upto(received)  # while the window is still in cache
                with steps.step("digest hand-offs and the wait for its end"):
                    digest.advance(received)
            checker.check_upto(received)
            with steps.step("digest hand-offs and the wait for its end"):
                payload_sha256 = digest.finish()
        finally:
            digest.abandon()
        with steps.step("commitment and fold"):
            check_commitment(salt=header.commitment_salt, payload_sha256=payload_sha256, commitment=header.commitment)
            by_name = {e.spec.name: e for e in parsed.entries}
            weights = ModelWeights({name: staging._tensor_view(buffer, by_name[name]) for name in parsed.order})
            fold.fold_inplace(weights, weight=float(header.num_examples))
    return payload_sha256, steps.seconds


def _receive_exactly(tls: ssl.SSLSocket, size: int) -> bytearray:
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = tls.recv_into(view[got:])
        if n == 0:
            raise MalformedUpdate(f"update stream ended inside its header ({got} of {size} bytes)")
        got += n
    return data

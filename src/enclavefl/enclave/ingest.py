"""Ingest of one plaintext update: its header checked before any byte is read, its bytes staged, then opened.

    ingest = UpdateIngest(job=job, schema=schema, staging_slots=1)
    ingest.prepare_slot()                       # at round open: the slot is made before the first upload
    ingest.check_header(update.header)          # who, how many examples, which metrics: before the stream
    with ingest.staged(update, still_open=state.check_open) as staged:
        ...fold staged.weights...               # a complete, valid update whose commitment opens to its bytes

The stream goes into a staging slot (enclave/staging.py), checked as it arrives. Only a complete update whose
commitment opens to the received bytes under the owner's salt reaches the fold: the receipt lists the
commitment, so a commitment to other bytes would let the receipt claim another inclusion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from enclavefl.core.commitments import COMMITMENT_BYTES, SALT_BYTES, check_commitment
from enclavefl.core.job import JobSpec
from enclavefl.core.update import IncomingUpdate, UpdateHeader
from enclavefl.core.weights import ModelSchema
from enclavefl.enclave.crash_points import crash_mid_stream
from enclavefl.enclave.metrics import check_evaluation, check_metrics
from enclavefl.enclave.staging import StagedUpdate, StagingPool, ingest_stream
from enclavefl.errors import (
    CommitmentMismatch,
    MalformedUpdate,
    MaskingRefused,
    NotEnrolled,
    TooManyExamples,
    UpdateTooLarge,
)

HEADER_ALLOWANCE = 64 * 1024  # safetensors header bytes allowed on top of the tensors' size


class UpdateIngest:
    """The checks and buffers every plaintext update goes through; thread-safe (the pool hands out slots)."""

    def __init__(self, *, job: JobSpec, schema: ModelSchema, staging_slots: int = 1) -> None:
        self._job = job
        self._schema = schema
        self._pool = StagingPool(nbytes=schema.nbytes, slots=staging_slots)
        self._size_limit = job.update_size_limit() or schema.nbytes
        self._enrolled = {o.name for o in job.data_owners}

    def check_header(self, header: UpdateHeader) -> None:
        """Raise the UpdateRejected leaf for a header the job refuses, before any byte of the update is read."""
        if self._enrolled and header.owner not in self._enrolled:
            raise NotEnrolled(f"{header.owner!r} is not enrolled in job {self._job.name!r}")
        if len(header.commitment_salt) != SALT_BYTES or len(header.commitment) != COMMITMENT_BYTES:
            raise CommitmentMismatch(
                f"an upload carries a {SALT_BYTES}-byte commitment salt and a {COMMITMENT_BYTES}-byte commitment, "
                f"got {len(header.commitment_salt)} and {len(header.commitment)} bytes"
            )
        if header.num_examples < 1:
            raise MalformedUpdate(f"num_examples must be >= 1, got {header.num_examples}")
        if self._job.masked:
            raise MaskingRefused("this job is masked: plaintext updates are refused (send a masked input)")
        if header.num_examples > self._job.max_examples_per_update:
            raise TooManyExamples(
                f"the update declares {header.num_examples} examples; the job allows at most "
                f"{self._job.max_examples_per_update} per update (max_examples_per_update)"
            )
        check_metrics(header.metrics)
        check_evaluation(header, self._job)

    def prepare_slot(self) -> None:
        """Start making a staging slot (at round open, on a thread of its own), off the first upload's path."""
        self._pool.prepare()

    def retire_slots(self) -> int:
        """Free the staging buffers (at round close: see StagingPool); the next round's `prepare_slot` makes one."""
        return self._pool.retire()

    @contextmanager
    def staged(self, update: IncomingUpdate, *, still_open: Callable[[], None]) -> Iterator[StagedUpdate]:
        """The update received into a staging slot and checked; its views are valid until the block ends.

        `still_open` raises once the round closed: while waiting for a slot and between chunks.
        """
        if update.size is not None and update.size > self._size_limit + HEADER_ALLOWANCE:
            raise UpdateTooLarge(f"update is {update.size} bytes, the job's limit is {self._size_limit} + header")
        with self._pool.slot(still_wanted=still_open) as buffer:
            staged = ingest_stream(
                crash_mid_stream(update.chunks, update.header.round),
                buffer=buffer,
                schema=self._schema,
                max_bytes=self._size_limit,
                header_limit=HEADER_ALLOWANCE,
                between_chunks=still_open,
            )
            header = update.header
            check_commitment(
                salt=header.commitment_salt, payload_sha256=staged.payload_sha256, commitment=header.commitment
            )
            yield staged

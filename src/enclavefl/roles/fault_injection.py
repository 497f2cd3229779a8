"""Crash points for the fault-injection suite (tests/faults/): inert unless ENCLAVEFL_FAULT_INJECTION is set.

    ENCLAVEFL_FAULT_INJECTION="checkpoint-before-rename@5"   # SIGKILL this process at that point of round 5

Points: `upload-mid-stream` (the node has read part of an update), `round-finalized` (the aggregate exists
but is neither sealed nor released), `checkpoint-before-rename` (the sealed temporary file is written and
fsynced, the rename has not happened). The process kills itself with SIGKILL, so no cleanup code runs: the
same as a host pulling the plug. Under Gramine the manifest passes no host environment into the enclave
(docs/gramine.md), so the variable cannot reach a production node.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable, Iterator
from typing import Final

ENV_VAR: Final = "ENCLAVEFL_FAULT_INJECTION"
POINTS: Final = ("upload-mid-stream", "round-finalized", "checkpoint-before-rename")

log = logging.getLogger(__name__)


def crash_point(point: str, round_index: int) -> None:
    """SIGKILL this process if ENCLAVEFL_FAULT_INJECTION names `point@round_index`; otherwise nothing."""
    if point not in POINTS:
        raise ValueError(f"unknown fault-injection point {point!r}")
    armed = os.environ.get(ENV_VAR)
    if armed and armed == f"{point}@{round_index}":
        log.critical("fault injection: SIGKILL at %s in round %d", point, round_index)
        os.kill(os.getpid(), signal.SIGKILL)


def crash_mid_stream(chunks: Iterable[bytes | memoryview], round_index: int) -> Iterable[bytes | memoryview]:
    """`chunks`, unchanged, or (when armed for `upload-mid-stream@round_index`) dying after the first chunk."""
    if os.environ.get(ENV_VAR) != f"upload-mid-stream@{round_index}":
        return chunks
    return _dying_after_first(chunks, round_index)


def _dying_after_first(chunks: Iterable[bytes | memoryview], round_index: int) -> Iterator[bytes | memoryview]:
    for index, chunk in enumerate(chunks):
        if index == 1:
            crash_point("upload-mid-stream", round_index)
        yield chunk

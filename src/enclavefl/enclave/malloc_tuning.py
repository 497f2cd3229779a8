"""glibc malloc settings for the node process: freed model-sized buffers go back to the OS at once.

By default glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which chunk-
and model-sized buffers come from per-thread heaps (up to 8 per core) that keep freed memory. The node frees a
model-sized buffer at every round and chunk-sized gRPC buffers on 32 RPC threads, so its RSS would ratchet up
by several model sizes that it no longer uses. A fixed threshold keeps every block of 1 MiB and more in its own
mapping (unmapped on free) and two arenas bound what small allocations retain. Gramine's libc is glibc too.

The C library is the process's own (`dlopen(NULL)`): `ctypes.util.find_library` would run `ldconfig` or `gcc` in
a subprocess, which the enclave refuses (sys.disallow_subprocesses) and which has no business in a node anyway.
The arena bound is the one the manifest sets (tee/process_env.py).
"""

from __future__ import annotations

import ctypes
import logging

from enclavefl.tee.process_env import MALLOC_ARENA_MAX

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20  # above an upload message (576 KiB): reused heap, not a fresh mapping (performance.md)
TRIM_THRESHOLD_BYTES = 1 << 20
ARENA_MAX = MALLOC_ARENA_MAX


def return_freed_memory_to_the_os() -> bool:
    """Apply the settings; False (and nothing changed) where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols already loaded: glibc's mallopt where libc is glibc
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = all(
        (
            mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            mallopt(_M_ARENA_MAX, ARENA_MAX),
        )
    )
    if not applied:
        log.warning("malloc tuning was refused by the C library; node memory may grow past its budget")
    return applied

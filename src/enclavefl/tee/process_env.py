"""Settings of the enclave process that both the Gramine manifest and the node's own code apply.

    from enclavefl.tee.process_env import MALLOC_ARENA_MAX   # manifest: loader.env.MALLOC_ARENA_MAX
                                                             # node: mallopt(M_ARENA_MAX, ...) at start

One value, so the manifest (rendered by tee/gramine_pkg) and the running node (enclave/malloc_tuning.py) cannot
disagree: glibc reads the variable when the process starts and the node sets the same bound again with mallopt,
which also covers a node started outside Gramine (the simulated enclave, tests, benchmarks).
"""

from __future__ import annotations

from typing import Final

# glibc's malloc arenas: each thread may otherwise get its own heap (up to 8 per core) that keeps freed memory;
# two bound what small allocations retain on 32 RPC threads (docs/performance.md, "Node memory").
MALLOC_ARENA_MAX: Final = 2

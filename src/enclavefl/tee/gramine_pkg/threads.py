"""sgx.max_threads from the thread pools the aggregator configures, so the enclave never runs out of TCS slots.

Every thread of the process needs one SGX thread slot (TCS), fixed at signing time. Gramine sees every host
core, so a pool sized from the core count would grow with the host; the pools we control are therefore sized
explicitly (the gRPC server's Python workers through `--rpc-workers`) and the pools we do not control are counted
at their documented maximum:

    Python       main thread, the round loop, the upload digest (the node has 1 staging slot) 3
    gRPC server  ThreadPoolExecutor(max_workers=rpc_workers)                                 rpc_workers
    gRPC core    event-engine pool, clamp(cores, 4, 16) -> at most 16; timer, lifeguard,
                 backup poller                                                                16 + 3
    Gramine      its own helpers (IPC, async events, TLS handshake)                          3

and the sum gets 25% headroom, rounded up to a multiple of 8. With the default 32 workers that is 57 threads ->
sgx.max_threads = 72, on any host (the enclave verifies no quote: dcap-qvl and its tokio runtime stay outside).
docs/gramine.md, "Threads", gives the same numbers.
"""

from __future__ import annotations

from typing import Final

PYTHON_THREADS: Final = 3
GRPC_CORE_POOL_MAX: Final = 16
GRPC_CORE_HELPERS: Final = 3
GRAMINE_HELPER_THREADS: Final = 3
HEADROOM_PERCENT: Final = 25
DEFAULT_RPC_WORKERS: Final = 32


def counted_threads(*, rpc_workers: int) -> int:
    """Threads the enclave can have at once with these pool sizes (no headroom)."""
    return PYTHON_THREADS + rpc_workers + GRPC_CORE_POOL_MAX + GRPC_CORE_HELPERS + GRAMINE_HELPER_THREADS


def required_max_threads(*, rpc_workers: int) -> int:
    """sgx.max_threads for these pool sizes: the count plus 25% headroom, rounded up to a multiple of 8."""
    counted = counted_threads(rpc_workers=rpc_workers)
    with_headroom = -(-counted * (100 + HEADROOM_PERCENT) // 100)
    return -(-with_headroom // 8) * 8

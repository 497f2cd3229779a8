"""sgx.max_threads from the thread pools the aggregator configures, so the enclave never runs out of TCS slots.

Every thread of the process needs one SGX thread slot (TCS), fixed at signing time. The node's gRPC server is
asynchronous (grpc.aio): calls that wait (status long polls, Watch, uploads waiting for a slot or the seal) are
coroutines and hold no thread, so the count below is the same for 10 owners or 1,000 (tests/transport/
test_thread_count.py checks it; benchmarks/bench_many_owners.py reports it). Gramine sees every host core, so a
pool sized from the core count would grow with the host; the pools we control are therefore sized explicitly
(the server's work threads through `--rpc-workers`) and the pools we do not control are counted at their
documented maximum:

    Python       main thread, round loop, the server's event loop and grpc.aio's completion-queue
                 poller, the upload ingest thread and its digest helper (1 staging slot)       6
                 (the thread that makes the slot at round open ends as it hands the slot over:
                 it can meet the first upload's digest helper only for a moment, in the headroom)
    gRPC server  work pool (NodeService calls: status reads, signature checks, quotes)         rpc_workers
    gRPC core    event-engine pool, clamp(cores, 4, 16) -> at most 16; timer, lifeguard,
                 backup poller                                                                 16 + 3
    Gramine      its own helpers (IPC, async events, TLS handshake)                            3

and the sum gets 25% headroom, rounded up to a multiple of 8. With the default 4 work threads that is 32
threads -> sgx.max_threads = 40, on any host (the enclave verifies no quote: dcap-qvl stays outside).
docs/gramine.md, "Threads", gives the same numbers.
"""

from __future__ import annotations

from typing import Final

PYTHON_THREADS: Final = 6
GRPC_CORE_POOL_MAX: Final = 16
GRPC_CORE_HELPERS: Final = 3
GRAMINE_HELPER_THREADS: Final = 3
HEADROOM_PERCENT: Final = 25
DEFAULT_RPC_WORKERS: Final = 4  # the server's work threads (transport/grpc_server.py DEFAULT_WORK_THREADS)


def counted_threads(*, rpc_workers: int) -> int:
    """Threads the enclave can have at once with these pool sizes (no headroom)."""
    return PYTHON_THREADS + rpc_workers + GRPC_CORE_POOL_MAX + GRPC_CORE_HELPERS + GRAMINE_HELPER_THREADS


def required_max_threads(*, rpc_workers: int) -> int:
    """sgx.max_threads for these pool sizes: the count plus 25% headroom, rounded up to a multiple of 8."""
    counted = counted_threads(rpc_workers=rpc_workers)
    with_headroom = -(-counted * (100 + HEADROOM_PERCENT) // 100)
    return -(-with_headroom // 8) * 8

"""The memory checks of a node: will a round of this strategy fit, and does the whole node fit its enclave?

    need = enclave_memory_bytes(strategy, model_bytes=40 << 20, updates=10, rpc_workers=32)

`enclave_memory_bytes` is the one formula for an enclave's size (`enclavefl enclave init` derives the size from it,
the node refuses at start a job its enclave cannot hold; docs/gramine.md, "Enclave memory"). It counts the address
space the node uses at its peak, not only its resident memory, because an enclave without EDMM must hold every
mapping, touched or not: the runtime term from the node's VmPeak under Gramine's LibOS
(benchmarks/bench_gramine_direct.py), the round term from the node's measured peak (benchmarks/bench_federation.py).
"""

from __future__ import annotations

from typing import Final

from enclavefl.aggregation.base import AggregationStrategy
from enclavefl.errors import MemoryBudgetExceeded

_MIB: Final = 1 << 20
# The runtime: the node's address space under gramine-direct was 310 MiB with 14 threads live (docs/gramine.md,
# "Enclave memory"). Each gRPC worker thread adds its stack (the manifest's sys.stack.size, 2 MiB) and glibc's
# per-thread share (MALLOC_ARENA_MAX arenas): 4 MiB, an allowance, not measured thread by thread.
ENCLAVE_RUNTIME_BYTES: Final = 320 * _MIB
ENCLAVE_BYTES_PER_RPC_WORKER: Final = 4 * _MIB
# What a round holds beyond round_memory_bytes (gRPC's message buffers, TLS records, sealing, fragmentation), as
# a share of it: the node's peak measured 3.44-3.6x the model for FedAvg, whose round_memory_bytes is 3x.
ROUND_OVERHEAD_PERCENT: Final = 25


def round_memory_bytes(strategy: AggregationStrategy, model_bytes: int, updates: int) -> int:
    """The global model plus what the strategy needs for one round of `updates` updates."""
    return model_bytes + strategy.peak_memory_bytes(model_bytes=model_bytes, updates=updates)


def check_memory_budget(strategy: AggregationStrategy, model_bytes: int, updates: int, limit_bytes: int) -> int:
    """Return the bytes a round needs; raise MemoryBudgetExceeded if that is over `limit_bytes`."""
    if model_bytes < 0 or updates < 1 or limit_bytes < 0:
        raise ValueError("model_bytes and limit_bytes must be >= 0 and updates >= 1")
    need = round_memory_bytes(strategy, model_bytes=model_bytes, updates=updates)
    if need > limit_bytes:
        held = " (it holds every update until the round closes)" if strategy.holds_all_updates else ""
        raise MemoryBudgetExceeded(
            f"strategy {strategy.name!r}{held} needs {need} bytes for {updates} updates of a {model_bytes}-byte "
            f"model, over the node's limit of {limit_bytes} bytes"
        )
    return need


def enclave_memory_bytes(strategy: AggregationStrategy, *, model_bytes: int, updates: int, rpc_workers: int) -> int:
    """Bytes of enclave memory a node running this strategy needs: runtime, RPC threads, one round with overhead."""
    if rpc_workers < 1:
        raise ValueError("rpc_workers must be >= 1")
    round_bytes = round_memory_bytes(strategy, model_bytes=model_bytes, updates=updates)
    return (
        ENCLAVE_RUNTIME_BYTES
        + rpc_workers * ENCLAVE_BYTES_PER_RPC_WORKER
        + round_bytes * (100 + ROUND_OVERHEAD_PERCENT) // 100
    )

"""The memory checks of a node: will a round of this strategy fit, and does the whole node fit its enclave?

    need = enclave_memory_bytes(strategy, model_bytes=40 << 20, updates=10, rpc_workers=32)

`enclave_memory_bytes` is the one formula for an enclave's size (`enclavefl enclave init` derives the size from it
and writes it into the release, whose manifest signs it; the node refuses at start a job its enclave cannot hold;
docs/gramine.md, "Enclave memory"):

    need = runtime (320 MiB) + 4 MiB x rpc_workers + round buffers (64 MiB) + round term
    round term = plain FedAvg: 2 x model (the accumulator, one staging slot; the global model is read from the
                 sealed checkpoint during a round); any other strategy: the global model + its peak_memory_bytes

It counts the address space the node uses at its peak, not only its resident memory, because an enclave without
EDMM must hold every mapping, touched or not: the runtime term from the node's VmPeak under Gramine's LibOS
(benchmarks/bench_gramine_direct.py), the round term and its buffers from the node's measured peak
(benchmarks/bench_federation.py, docs/performance.md "Node memory").
"""

from __future__ import annotations

from typing import Final

from enclavefl.aggregation.base import AggregationStrategy
from enclavefl.aggregation.fedavg import FedAvg
from enclavefl.errors import MemoryBudgetExceeded

_MIB: Final = 1 << 20
# The runtime: the node's address space under gramine-direct was 310 MiB with 14 threads live (docs/gramine.md,
# "Enclave memory"). Each gRPC worker thread adds its stack (the manifest's sys.stack.size, 2 MiB) and glibc's
# per-thread share (MALLOC_ARENA_MAX arenas): 4 MiB, an allowance, not measured thread by thread.
ENCLAVE_RUNTIME_BYTES: Final = 320 * _MIB
ENCLAVE_BYTES_PER_RPC_WORKER: Final = 4 * _MIB
# What a round holds beyond its model-sized buffers, whatever the model's size: gRPC's messages and flow-control
# windows, TLS records, the download budget, sealing and reading checkpoint chunks. DESIGN.md §6's allowance; the
# node measured well under it on the big job and on a 400 MB model (docs/performance.md, "Node memory").
ROUND_BUFFER_BYTES: Final = 64 * _MIB


def keeps_global_model(strategy: AggregationStrategy) -> bool:
    """Whether a round of `strategy` keeps the global model resident. Plain FedAvg accumulates inside the next
    model's bytes and reads only the global model's schema, so the node serves the global model from its sealed
    checkpoint while the round runs (enclave/global_model.py); every other strategy reads it while it folds or
    finalizes."""
    return type(strategy) is not FedAvg


def round_memory_bytes(strategy: AggregationStrategy, model_bytes: int, updates: int) -> int:
    """The model-sized buffers of one round of `updates` updates: the strategy's own, and the global model if the
    round keeps it."""
    own = strategy.peak_memory_bytes(model_bytes=model_bytes, updates=updates)
    return own + (model_bytes if keeps_global_model(strategy) else 0)


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
    """Bytes of enclave memory a node running this strategy needs: runtime, RPC threads, one round and its buffers."""
    if rpc_workers < 1:
        raise ValueError("rpc_workers must be >= 1")
    return (
        ENCLAVE_RUNTIME_BYTES
        + rpc_workers * ENCLAVE_BYTES_PER_RPC_WORKER
        + ROUND_BUFFER_BYTES
        + round_memory_bytes(strategy, model_bytes=model_bytes, updates=updates)
    )

"""Masked mode (secure aggregation inside the enclave): loaded only for a job with [secure_aggregation].

    masked = load_part("masked")                    # enclave/parts.py: the one place that loads it
    worker.masked = masked.MaskedMode(worker)       # the worker's accessor: keys, shares, masked inputs, unmasking

A plain job's enclave never imports this package or `secagg/`: `enclavefl enclave tcb` lists it only in the
masked closure, which is what the release trusts in full.
"""

from enclavefl.enclave.masked.mode import PHASE_SHARES, MaskedMode
from enclavefl.enclave.masked.round import MaskedRound

__all__ = ["PHASE_SHARES", "MaskedMode", "MaskedRound"]

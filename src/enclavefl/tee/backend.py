"""The TEE backend Protocol: what the node needs from the hardware (or its simulation)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from enclavefl.tee.evidence import Evidence

REPORT_DATA_SIZE = 64


@runtime_checkable
class TeeBackend(Protocol):
    """Produces evidence for 64 bytes of report data and derives sealing keys.

    Implementations: `enclavefl.tee.inside.gramine.GramineBackend` (real SGX under Gramine) and,
    loudly insecure, those under `enclavefl.tee.insecure`.
    """

    @property
    def name(self) -> str:
        """Short name shown to users, e.g. "gramine-sgx" or "insecure-simulation"."""
        ...

    @property
    def is_insecure(self) -> bool:
        """True for every backend whose evidence proves nothing on its own."""
        ...

    def evidence(self, report_data: bytes) -> Evidence:
        """A quote binding exactly these 64 bytes, with collateral to verify it."""
        ...

    def sealing_key(self, name: str) -> bytes:
        """A 16-byte key that only this enclave identity can derive (Gramine's keys/<name>)."""
        ...

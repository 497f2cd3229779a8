"""The second phase of a round for tests that drive a SecureWorker directly: keyless owners sign in process."""

from __future__ import annotations

from collections.abc import Iterable

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.enclave.worker import SecureWorker


def acknowledge(worker: SecureWorker, receipt: SignedReceipt, signers: Iterable[str]) -> None:
    for name in signers:
        worker.acknowledge(
            Acknowledgement(owner=name, round=receipt.receipt.round, receipt_sha256=receipt.sha256, signature=b"")
        )


def close_and_release(worker: SecureWorker, signers: Iterable[str] | None = None) -> RoundSummary:
    """Seal the open round, have `signers` (default: every enrolled owner) sign its receipt, release it."""
    receipt = worker.close_round()
    acknowledge(worker, receipt, signers if signers is not None else [o.name for o in worker.job.data_owners])
    return worker.release_round()

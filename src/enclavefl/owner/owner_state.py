"""An owner's memory of the receipt chain, kept on its own disk so that a restarted owner still detects rollback.

    tracker = PersistentReceiptTracker.open(Path("state"), job_digest=job.digest())
    tracker.observe(client.receipts(), node_public_key_pem)    # RollbackDetected if older or forked; then saved

The file (`receipts-<job digest prefix>.json`) holds the hash of every receipt this owner verified, the last
receipt itself (body and signature, so it can be shown to a third party), and every receipt this owner signed in
the second phase of a round (`signed_rounds`: at most one per round, never replaced). It is the owner's own disk
and holds nothing secret; it is written durably (temporary file, fsync, rename, fsync of the directory) before a
signature leaves, so an owner that crashes and restarts still refuses to upload a round it signed.

Where the file lives and who may write it: owner/state_dir.py (by default this user's directory for the owner's
key, locked per job). `open(..., read_only=True)` checks against the file without ever writing it (a second
model-owner command while the first one holds the lock).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from enclavefl.core.durable import write_atomically
from enclavefl.core.receipt_checks import ReceiptTracker, SignedRounds
from enclavefl.core.receipts import RoundReceipt, SignedReceipt
from enclavefl.errors import ReceiptError

FORMAT: Final = "enclavefl/owner-receipts/v1"


class PersistentReceiptTracker(ReceiptTracker):
    """A ReceiptTracker whose memory survives the owner's process: loaded at open, saved when it changes."""

    def __init__(self, *, job_digest: bytes, path: Path, read_only: bool = False) -> None:
        super().__init__(job_digest=job_digest)
        self.path = path
        self.read_only = read_only  # checks against the file, never writes it (another process holds the lock)
        self.last_receipt: SignedReceipt | None = None
        self.signed_rounds = SignedRounds(on_change=self._record_signed)
        self._unsaved = False

    @classmethod
    def open(cls, directory: Path, *, job_digest: bytes, read_only: bool = False) -> PersistentReceiptTracker:
        """The tracker stored in `directory` for this job (empty when the owner never saw a receipt)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"receipts-{job_digest.hex()[:16]}.json"
        tracker = cls(job_digest=job_digest, path=path, read_only=read_only)
        if tracker.path.exists():
            tracker._load()
        return tracker

    def observe(
        self, receipts: Sequence[SignedReceipt], node_public_key_pem: bytes, *, defer_save: bool = False
    ) -> RoundReceipt | None:
        """Verify and remember; written before returning if anything changed, unless `defer_save` (the caller
        is about to record a signed receipt, whose durable write carries this too: one fsync per round)."""
        before = (dict(self._seen), self.last_receipt)
        head = super().observe(receipts, node_public_key_pem)
        if receipts and len(receipts) >= self.head_round:
            self.last_receipt = receipts[-1]
        self._unsaved |= (dict(self._seen), self.last_receipt) != before
        if self._unsaved and not defer_save:
            self._save()
        return head

    def _record_signed(self, signed: SignedReceipt) -> None:
        """The owner signs `signed` next: it counts as seen, and it is on disk before the signature leaves."""
        self._seen[signed.receipt.round] = signed.sha256
        if signed.receipt.round >= self.head_round:
            self.last_receipt = signed
        self._save()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            if raw["format"] != FORMAT or bytes.fromhex(raw["job_digest"]) != self.job_digest:
                raise ReceiptError(f"{self.path}: not this job's receipt memory")
            seen = {int(r): bytes.fromhex(h) for r, h in raw["seen"].items()}
            last = raw["last_receipt"]
            if last is not None:
                self.last_receipt = _parse(last)
            signed = {int(r): _parse(item) for r, item in raw.get("signed", {}).items()}
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReceiptError(f"{self.path}: unreadable receipt memory ({type(exc).__name__}: {exc})") from None
        if any(len(h) != 32 or r < 1 for r, h in seen.items()):
            raise ReceiptError(f"{self.path}: malformed receipt hashes")
        if any(r != s.receipt.round for r, s in signed.items()):
            raise ReceiptError(f"{self.path}: a signed receipt is filed under another round")
        self._seen.update(seen)
        self.signed_rounds = SignedRounds(signed, on_change=self._record_signed)

    def _save(self) -> None:
        if self.read_only:  # a model owner's second command: the lock holder writes (data owners always hold it)
            return
        last = self.last_receipt
        data = {
            "format": FORMAT,
            "job_digest": self.job_digest.hex(),
            "seen": {str(r): h.hex() for r, h in sorted(self._seen.items())},
            "last_receipt": None if last is None else _dump(last),
            "signed": {str(s.receipt.round): _dump(s) for s in self.signed_rounds.all()},
        }
        self._unsaved = False
        write_atomically(self.path, json.dumps(data, sort_keys=True, indent=1).encode())  # survives a power cut


def _dump(signed: SignedReceipt) -> dict[str, str]:
    return {"body": base64.b64encode(signed.body).decode(), "signature": base64.b64encode(signed.signature).decode()}


def _parse(item: dict[str, str]) -> SignedReceipt:
    return SignedReceipt.parse(
        base64.b64decode(item["body"], validate=True), base64.b64decode(item["signature"], validate=True)
    )

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
model-owner command while the first one holds the lock). Beside it: the masked-mode record (UnmaskRecord) and, for a
job with cohorts, what the node told this owner about each round's cohort (CohortClaims).
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
from enclavefl.errors import CohortMismatch, ReceiptError, UnmaskAlreadyAnswered

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


UNMASK_FORMAT: Final = "enclavefl/owner-unmask/v1"


class UnmaskRecord:
    """Masked mode: the rounds this owner uploaded a masked input to, and answered an unmasking request for.

        record = UnmaskRecord.beside(owner.chain.tracker, job_digest=job.digest())   # durable beside the receipts
        record.check_may_take_part(r)      # UnmaskAlreadyAnswered once this owner answered round r's unmasking
        fresh = record.record_upload(r)    # True when r was uploaded to before: train with fresh randomness
        record.record_answer(r)            # on disk before the answer leaves; a second answer for r is refused

    Why: every answer may complete an unmasked sum of the round in enclave memory; a second sum of the same
    round without one owner's input is that owner's update. So an owner answers each round once, in any attempt
    and across restarts of the node (a rolled-back enclave forgets, this file does not), and a re-attempt of a
    round it uploaded to is trained with fresh randomness. The file (`unmask-<job digest prefix>.json`) holds only
    round numbers; without a directory (no durable owner state) the record lives as long as the process.
    """

    def __init__(self, *, job_digest: bytes, path: Path | None = None) -> None:
        self.job_digest = job_digest
        self.path = path
        self._answered: set[int] = set()
        self._uploaded: set[int] = set()
        if path is not None and path.exists():
            self._load(path)

    @classmethod
    def beside(cls, tracker: ReceiptTracker, *, job_digest: bytes) -> UnmaskRecord:
        """Next to a PersistentReceiptTracker's file (durable), or in memory for an owner without state."""
        if isinstance(tracker, PersistentReceiptTracker):
            return cls(job_digest=job_digest, path=tracker.path.with_name(f"unmask-{job_digest.hex()[:16]}.json"))
        return cls(job_digest=job_digest)

    def check_may_take_part(self, round_index: int) -> None:
        if round_index in self._answered:
            raise UnmaskAlreadyAnswered(
                f"round {round_index}: this owner already answered its unmasking request; it takes no further part "
                "in it (a second unmasked sum of the round could expose one owner's update)"
            )

    def record_upload(self, round_index: int) -> bool:
        """Remember (durably) that a masked input for `round_index` is about to leave; True if one left before."""
        self.check_may_take_part(round_index)
        before = round_index in self._uploaded
        if not before:
            self._uploaded.add(round_index)
            self._save()
        return before

    def record_answer(self, round_index: int) -> None:
        """Remember (durably) the round's one unmasking answer before it leaves; UnmaskAlreadyAnswered after that."""
        self.check_may_take_part(round_index)
        self._answered.add(round_index)
        self._save()

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text())
            if raw["format"] != UNMASK_FORMAT or bytes.fromhex(raw["job_digest"]) != self.job_digest:
                raise ReceiptError(f"{path}: not this job's masked-mode record")
            self._answered = {int(r) for r in raw["answered"]}
            self._uploaded = {int(r) for r in raw["uploaded"]}
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ReceiptError(f"{path}: unreadable masked-mode record ({type(exc).__name__}: {exc})") from None

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "format": UNMASK_FORMAT,
            "job_digest": self.job_digest.hex(),
            "answered": sorted(self._answered),
            "uploaded": sorted(self._uploaded),
        }
        write_atomically(self.path, json.dumps(data, sort_keys=True).encode())  # before the message leaves


COHORT_FORMAT: Final = "enclavefl/owner-cohort-claims/v1"


class CohortClaims:
    """A cohort job: what the node told this owner about each round's cohort, (member, token), kept for good.

        claims = CohortClaims.beside(owner.chain.tracker, job_digest=job.digest())   # durable beside the receipts
        claims.note(3, member=True, token=t)   # on disk the first time; CohortMismatch if round 3 was told otherwise
        member, token = claims.get(3)          # (False, b"") for a round the node never described

    Why: a node that tells an owner two different cohorts for one round is redrawing it (a rolled-back or fresh-key
    enclave, or one watching who uploads); the owner refuses the second story. Kept on disk, the first story
    survives the owner's restarts too. The file (`cohort-<job digest prefix>.json`) holds round numbers, membership
    and the owner's own round tokens (no secret of anyone else's); without a directory it lives with the process.
    """

    def __init__(self, *, job_digest: bytes, path: Path | None = None, read_only: bool = False) -> None:
        self.job_digest = job_digest
        self.path = path
        self.read_only = read_only  # checks against the file, never writes it (another process holds the lock)
        self._claims: dict[int, tuple[bool, bytes]] = {}
        if path is not None and path.exists():
            self._load(path)

    @classmethod
    def beside(cls, tracker: ReceiptTracker, *, job_digest: bytes) -> CohortClaims:
        """Next to a PersistentReceiptTracker's file (durable, read-only with it), or in memory without state."""
        if isinstance(tracker, PersistentReceiptTracker):
            path = tracker.path.with_name(f"cohort-{job_digest.hex()[:16]}.json")
            return cls(job_digest=job_digest, path=path, read_only=tracker.read_only)
        return cls(job_digest=job_digest)

    def get(self, round_index: int) -> tuple[bool, bytes]:
        return self._claims.get(round_index, (False, b""))

    def __contains__(self, round_index: object) -> bool:
        return round_index in self._claims

    def note(self, round_index: int, *, member: bool, token: bytes) -> None:
        """Remember the round's claim (durably, before the owner acts on it); CohortMismatch if it changed."""
        known = self._claims.get(round_index)
        if known is None:
            self._claims[round_index] = (member, token)
            self._save()
        elif known != (member, token):
            raise CohortMismatch(
                f"round {round_index}: the node told this owner it is {'in' if known[0] else 'outside'} the cohort, "
                f"and now {'in' if member else 'outside'} it with another token: a redrawn cohort is refused"
            )

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text())
            if raw["format"] != COHORT_FORMAT or bytes.fromhex(raw["job_digest"]) != self.job_digest:
                raise ReceiptError(f"{path}: not this job's cohort claims")
            claims = {int(r): (c["member"], bytes.fromhex(c["token"])) for r, c in raw["rounds"].items()}
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReceiptError(f"{path}: unreadable cohort claims ({type(exc).__name__}: {exc})") from None
        if any(r < 1 or not isinstance(member, bool) for r, (member, _) in claims.items()):
            raise ReceiptError(f"{path}: malformed cohort claims")
        self._claims = claims

    def _save(self) -> None:
        if self.path is None or self.read_only:
            return
        data = {
            "format": COHORT_FORMAT,
            "job_digest": self.job_digest.hex(),
            "rounds": {str(r): {"member": m, "token": t.hex()} for r, (m, t) in sorted(self._claims.items())},
        }
        write_atomically(self.path, json.dumps(data, sort_keys=True, indent=1).encode())  # before the owner acts

"""A data owner's record of the salts that open its receipt commitments, kept on its own disk.

    log = CommitmentLog.open(Path("state"), job_digest=job.digest())
    log.record(round_index, salt=header.commitment_salt, commitment=header.commitment)   # before the upload

Receipts list only commitments HMAC-SHA256(salt, domain || SHA-256(payload)) (core/commitments.py). Whoever
holds a salt and the receipt can test payload candidates again, so the salts are as private as the owner's
updates: the file (`commitments-<job digest prefix>.json`, mode 0600) stays on the owner's disk. With it, the
owner can show anyone which commitment in a receipt is its own (reveal salt and payload) even after a restart.
Every attempt of a round is kept (an upload whose acknowledgement was lost may still have been accepted), and
each is written, atomically, before its upload leaves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enclavefl.core.commitments import COMMITMENT_BYTES, SALT_BYTES
from enclavefl.core.durable import write_atomically
from enclavefl.errors import ReceiptError

FORMAT: Final = "enclavefl/owner-commitments/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitmentOpening:
    salt: bytes
    commitment: bytes


class CommitmentLog:
    """round -> every (salt, commitment) this owner uploaded for it, persisted before each upload."""

    def __init__(self, *, job_digest: bytes, path: Path) -> None:
        self.job_digest = job_digest
        self.path = path
        self._rounds: dict[int, list[CommitmentOpening]] = {}

    @classmethod
    def open(cls, directory: Path, *, job_digest: bytes) -> CommitmentLog:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = cls(job_digest=job_digest, path=directory / f"commitments-{job_digest.hex()[:16]}.json")
        if log.path.exists():
            log._load()
        return log

    def openings(self, round_index: int) -> tuple[CommitmentOpening, ...]:
        return tuple(self._rounds.get(round_index, ()))

    def record(self, round_index: int, *, salt: bytes, commitment: bytes) -> None:
        """Remember one upload's opening; written to disk before this returns."""
        if len(salt) != SALT_BYTES or len(commitment) != COMMITMENT_BYTES:
            raise ValueError("a commitment opening is a 32-byte salt and a 32-byte commitment")
        self._rounds.setdefault(round_index, []).append(CommitmentOpening(salt=salt, commitment=commitment))
        self._save()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            if raw["format"] != FORMAT or bytes.fromhex(raw["job_digest"]) != self.job_digest:
                raise ReceiptError(f"{self.path}: not this job's commitment log")
            rounds = {
                int(r): [
                    CommitmentOpening(salt=bytes.fromhex(o["salt"]), commitment=bytes.fromhex(o["commitment"]))
                    for o in openings
                ]
                for r, openings in raw["rounds"].items()
            }
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReceiptError(f"{self.path}: unreadable commitment log ({type(exc).__name__}: {exc})") from None
        for openings in rounds.values():
            if any(len(o.salt) != SALT_BYTES or len(o.commitment) != COMMITMENT_BYTES for o in openings):
                raise ReceiptError(f"{self.path}: malformed commitment openings")
        self._rounds = rounds

    def _save(self) -> None:
        data = {
            "format": FORMAT,
            "job_digest": self.job_digest.hex(),
            "rounds": {
                str(r): [{"salt": o.salt.hex(), "commitment": o.commitment.hex()} for o in openings]
                for r, openings in sorted(self._rounds.items())
            },
        }
        write_atomically(self.path, json.dumps(data, sort_keys=True, indent=1).encode())  # mode 0600: secret salts

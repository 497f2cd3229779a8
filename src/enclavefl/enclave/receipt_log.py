"""The node's signed receipts as a sealed, append-only log: one record per round, never rewritten.

    log = ReceiptLog(directory / "receipts.log", sealing_key=key, label=label)
    position = log.append(position, [(body, signature)])    # fsynced; the checkpoint seals the new position
    receipts = log.read(position)                           # CheckpointError unless exactly that history

A round costs one record, whatever the length of the chain (the checkpoint used to rewrite every receipt each
round). The host keeps the file and may cut, reorder, replay or splice it; the node notices because:

* every record is sealed (tee/inside/seal.py) with its index and the SHA-256 of the record before it in the
  associated data: a record dropped, swapped or taken from another history does not open at its place;
* the round's checkpoint seals a `LogPosition` (records, bytes, SHA-256 of the last record): a log cut short,
  an older copy of it, or another history of the same length is refused against it.

Layout: per record, length (u32 BE) | sealed blob, whose plaintext is body length (u32 BE) | body | signature.

Crash safety: the record is appended and fsynced before the checkpoint that names it is renamed into place. A
crash at any byte in between leaves bytes past the last checkpoint's position: they are ignored when reading and
cut off by the next append, so the round is redone as if the record never existed.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, overload

from enclavefl.errors import CheckpointError, SealingError
from enclavefl.tee.inside.seal import seal, unseal

LOG_NAME: Final = "receipts.log"
_LENGTH: Final = struct.Struct(">I")
_INDEX: Final = struct.Struct(">Q")
_GENESIS: Final = bytes(32)

Receipt = tuple[bytes, bytes]  # (canonical body, signature)


class ChainPrefix(Sequence[Receipt]):
    """The first `length` items of an append-only list, without copying them: a round's checkpoint holds the
    chain so far in O(1) (a tuple of 5,000 receipts cost 5,000 reference counts to build and to free, each round).
    The owner of the list only ever appends to it, so the prefix never changes."""

    __slots__ = ("_items", "_length")

    def __init__(self, items: list[Receipt], length: int) -> None:
        if not 0 <= length <= len(items):
            raise ValueError(f"a prefix of {length} items of a list of {len(items)}")
        self._items, self._length = items, length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Receipt: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Receipt, ...]: ...
    def __getitem__(self, index: int | slice) -> Receipt | tuple[Receipt, ...]:
        if isinstance(index, slice):  # only the items asked for are copied (the store takes the new ones)
            return tuple(self._items[i] for i in range(*index.indices(self._length)))
        if not -self._length <= index < self._length:
            raise IndexError("receipt index out of range")
        return self._items[index % self._length]

    def __iter__(self) -> Iterator[Receipt]:
        return itertools.islice(self._items, self._length)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != self._length:
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class LogPosition:
    """How much of the log a checkpoint covers: its records, their bytes and the hash of the last one."""

    records: int = 0
    size: int = 0
    head: bytes = _GENESIS

    def to_json(self) -> dict[str, object]:
        return {"records": self.records, "bytes": self.size, "head": self.head.hex()}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> LogPosition:
        records, size, head = raw["records"], raw["bytes"], bytes.fromhex(str(raw["head"]))
        if not isinstance(records, int) or not isinstance(size, int) or records < 0 or size < 0 or len(head) != 32:
            raise ValueError(f"bad receipt log position {dict(raw)!r}")
        return cls(records=records, size=size, head=head)


class ReceiptLog:
    """Reads and appends the sealed receipt log at `path` (a file the host keeps and cannot read)."""

    def __init__(self, path: Path, *, sealing_key: bytes, label: str) -> None:
        self.path = path
        self._key = sealing_key
        self._label = label

    def append(self, position: LogPosition, receipts: Iterable[Receipt]) -> LogPosition:
        """Write `receipts` after `position` (dropping anything past it, a crash's leftover) and fsync."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size < position.size:  # extending would write zeros into the history the checkpoint vouches for
                raise CheckpointError(
                    f"{self.path.name} shrank to {size} bytes under the node, its sealed state covers {position.size}"
                )
            os.ftruncate(fd, position.size)
            os.lseek(fd, position.size, os.SEEK_SET)
            records, end, head = position.records, position.size, position.head
            for body, signature in receipts:
                blob = seal(self._key, _plaintext(body, signature), label=self._label, context=_context(records, head))
                record = _LENGTH.pack(len(blob)) + blob
                write_all(fd, record)
                records, end, head = records + 1, end + len(record), hashlib.sha256(record).digest()
            os.fsync(fd)
        finally:
            os.close(fd)
        if position.size == 0:  # the file may be new: its directory entry must be durable too
            fsync_directory(self.path.parent)
        return LogPosition(records=records, size=end, head=head)

    def read(self, position: LogPosition) -> tuple[Receipt, ...]:
        """The receipts up to `position`; CheckpointError naming the first record that is not where it should be."""
        name = self.path.name
        try:
            with self.path.open("rb") as file:
                data = file.read(position.size)
        except FileNotFoundError:
            data = b""
        if len(data) < position.size:
            raise CheckpointError(
                f"{name} holds {len(data)} bytes, the sealed checkpoint covers {position.size} bytes of "
                f"{position.records} receipt(s): the log was cut short or replaced by an older copy (rollback attempt?)"
            )
        receipts: list[Receipt] = []
        offset, head = 0, _GENESIS
        for index in range(position.records):
            end = offset + _LENGTH.size
            if end <= len(data):
                end += _LENGTH.unpack_from(data, offset)[0]
            if end > len(data):
                raise CheckpointError(
                    f"{name}: record {index + 1} runs past the {position.size} bytes the checkpoint seals"
                )
            record = data[offset:end]
            try:
                plaintext = unseal(self._key, record[_LENGTH.size :], label=self._label, context=_context(index, head))
            except SealingError as exc:
                raise CheckpointError(
                    f"{name}: record {index + 1} does not open at its place ({exc}): a record was dropped, "
                    "reordered, replayed or spliced in"
                ) from None
            receipts.append(_parse(plaintext, name, index))
            offset, head = end, hashlib.sha256(record).digest()
        if offset != position.size:
            raise CheckpointError(f"{name}: {position.records} record(s) end at byte {offset}, not {position.size}")
        if head != position.head:
            raise CheckpointError(
                f"{name}: the last of its {position.records} record(s) is not the one the checkpoint sealed: "
                "a log of another history (replayed or spliced)"
            )
        return tuple(receipts)


def _context(index: int, previous: bytes) -> bytes:
    return _INDEX.pack(index) + previous


def _plaintext(body: bytes, signature: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body + signature


def _parse(plaintext: bytes, name: str, index: int) -> Receipt:
    if len(plaintext) < _LENGTH.size:
        raise CheckpointError(f"{name}: record {index + 1} is shorter than its length field")
    (length,) = _LENGTH.unpack_from(plaintext)
    if _LENGTH.size + length > len(plaintext):
        raise CheckpointError(f"{name}: record {index + 1} says its body has {length} bytes, it holds fewer")
    return plaintext[_LENGTH.size : _LENGTH.size + length], plaintext[_LENGTH.size + length :]


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less than it was given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_directory(directory: Path) -> None:
    """Make a file's new or renamed entry in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The chunked seal (tee/inside/seal_stream.py): every chunk authenticated on its own, at its own place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enclavefl.errors import SealingError
from enclavefl.tee.inside.seal import unseal
from enclavefl.tee.inside.seal_stream import SealedReader, seal_stream, unseal_stream

KEY = bytes(range(16))
LABEL = "enclavefl/test/stream"
HEAD = 7 + 1 + 8 + 4
TAG = 16


def sealed(parts: list[bytes], chunk: int = 10, label: str = LABEL) -> bytes:
    out: list[bytes] = []
    seal_stream(KEY, parts, out.append, label=label, chunk_bytes=chunk)
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 20, 35])
@pytest.mark.parametrize("split", [1, 3, 10, 25])
def test_round_trip_whatever_the_parts(size: int, split: int) -> None:
    data = os.urandom(size)
    parts = [data[i : i + split] for i in range(0, size, split)] or [b""]
    blob = sealed(parts)
    assert unseal_stream(KEY, blob, label=LABEL) == data
    assert unseal(KEY, blob, label=LABEL) == data  # the one `unseal` opens both formats
    chunks = max(1, -(-size // 10)) + (1 if size and size % 10 == 0 else 0)  # a whole last chunk: an empty last
    assert len(blob) == HEAD + size + chunks * TAG


def test_ranges_read_only_the_chunks_they_need(tmp_path: Path) -> None:
    data = os.urandom(95)
    path = tmp_path / "f"
    path.write_bytes(sealed([data]))
    with path.open("rb") as f:
        reader = SealedReader.of_file(KEY, f.fileno(), label=LABEL)
        assert reader.size == 95
        for offset, length in [(0, 95), (13, 40), (90, 5), (95, 0), (10, 10)]:
            pieces = list(reader.pieces(offset, length))
            assert b"".join(pieces) == data[offset : offset + length]
            assert all(len(p) <= 10 for p in pieces)
        with pytest.raises(SealingError, match="outside"):
            list(reader.pieces(90, 6))


@pytest.mark.parametrize("chunk_index", [0, 4, 9])
def test_an_edited_chunk_is_named_and_the_others_still_read(chunk_index: int) -> None:
    data = os.urandom(95)
    blob = bytearray(sealed([data]))
    blob[HEAD + chunk_index * (10 + TAG) + 3] ^= 1
    view = memoryview(bytes(blob))
    reader = SealedReader(KEY, label=LABEL, read_at=lambda o, n: view[o : o + n], blob_size=len(view))
    with pytest.raises(SealingError, match=f"chunk {chunk_index} of 10 .* fails authentication"):
        reader.read()
    good = [i for i in range(10) if i != chunk_index]
    assert all(reader.chunk(i) == data[i * 10 : i * 10 + 10] for i in good)


def test_swapped_chunks_do_not_open() -> None:
    blob = bytearray(sealed([os.urandom(40)]))
    size = 10 + TAG
    first, second = blob[HEAD : HEAD + size], blob[HEAD + size : HEAD + 2 * size]
    blob[HEAD : HEAD + size], blob[HEAD + size : HEAD + 2 * size] = second, first
    with pytest.raises(SealingError, match="chunk 0 of"):
        unseal_stream(KEY, blob, label=LABEL)


def test_a_file_cut_at_a_chunk_boundary_does_not_open() -> None:
    blob = sealed([os.urandom(45)])
    cut = blob[: HEAD + 3 * (10 + TAG)]  # three whole chunks: the new last one was not sealed as last
    with pytest.raises(SealingError, match="chunk 2 of 3"):
        unseal_stream(KEY, cut, label=LABEL)
    with pytest.raises(SealingError, match="fails authentication"):
        unseal_stream(KEY, blob[:-1], label=LABEL)


def test_a_chunk_of_another_file_does_not_open() -> None:
    data = os.urandom(30)
    one, two = bytearray(sealed([data])), sealed([data])  # same plaintext, same key: another nonce prefix
    one[HEAD : HEAD + 10 + TAG] = two[HEAD : HEAD + 10 + TAG]
    with pytest.raises(SealingError, match="chunk 0 of"):
        unseal_stream(KEY, one, label=LABEL)


def test_another_label_or_key_does_not_open() -> None:
    blob = sealed([b"secret state"])
    with pytest.raises(SealingError, match="fails authentication"):
        unseal_stream(KEY, blob, label="enclavefl/test/other")
    with pytest.raises(SealingError, match="fails authentication"):
        unseal_stream(bytes(16), blob, label=LABEL)


def test_the_plaintext_never_appears_in_the_blob() -> None:
    secret = b"identity key: " + os.urandom(64)
    assert secret[:14] not in sealed([secret], chunk=1 << 20)

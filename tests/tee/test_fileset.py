"""The trusted-file expansion follows gramine-manifest's rules (graminelibos TrustedFile.expand_directory)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from enclavefl.errors import ManifestHardeningError
from enclavefl.tee.gramine_pkg.fileset import TrustedFile, expand_trusted_files, file_set_digest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "app" / "pkg" / "sub").mkdir(parents=True)
    (root / "app" / "pkg" / "b.py").write_bytes(b"b")
    (root / "app" / "pkg" / "a.py").write_bytes(b"a")
    (root / "app" / "pkg" / "sub" / "c.py").write_bytes(b"c")
    (root / "app" / "pkg" / ".hidden").write_bytes(b"h")
    (root / "app" / "pkg" / "link.py").symlink_to("a.py")
    (root / "app" / "pkg" / "linkdir").symlink_to("sub")  # a symlinked directory: not descended into
    os.mkfifo(root / "app" / "pkg" / "fifo")  # neither file nor directory: skipped
    return root


def test_directories_expand_sorted_recursively_as_gramine_does(tree: Path) -> None:
    files = expand_trusted_files(["file:/app/pkg/"], root=tree)

    assert files == (
        TrustedFile(uri="file:/app/pkg/.hidden", sha256=sha(b"h")),
        TrustedFile(uri="file:/app/pkg/a.py", sha256=sha(b"a")),
        TrustedFile(uri="file:/app/pkg/b.py", sha256=sha(b"b")),
        TrustedFile(uri="file:/app/pkg/link.py", sha256=sha(b"a")),  # hashed through the symlink
        TrustedFile(uri="file:/app/pkg/sub/c.py", sha256=sha(b"c")),
    )


def test_duplicates_count_once_and_given_hashes_are_kept(tree: Path) -> None:
    files = expand_trusted_files(
        [
            "file:/app/pkg/a.py",
            "file:/app/pkg/sub/",
            {"uri": "file:/app/pkg/b.py", "sha256": "00" * 32},
            "file:/app/pkg/sub/c.py",
        ],
        root=tree,
    )

    assert [f.uri for f in files] == ["file:/app/pkg/a.py", "file:/app/pkg/b.py", "file:/app/pkg/sub/c.py"]
    assert files[1].sha256 == "00" * 32


def test_a_changed_byte_changes_the_digest(tree: Path) -> None:
    before = file_set_digest(expand_trusted_files(["file:/app/"], root=tree))
    (tree / "app" / "pkg" / "sub" / "c.py").write_bytes(b"C")

    assert file_set_digest(expand_trusted_files(["file:/app/"], root=tree)) != before


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("file:/app/pkg", "does not end with '/'"),
        ("file:/app/pkg/a.py/", "not a directory"),
        ("file:/app/missing.py", "does not exist"),
        ("dev:/app/pkg/a.py", "not a file: URI"),
        ({"uri": "file:/app/pkg/a.py", "size": 1}, "unknown trusted file entry"),
    ],
)
def test_malformed_entries_are_refused(tree: Path, entry: object, message: str) -> None:
    with pytest.raises(ManifestHardeningError, match=message):
        expand_trusted_files([entry], root=tree)

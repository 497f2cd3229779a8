"""The measured file set of a rendered manifest, expanded the way `gramine-manifest` expands it, without Gramine.

    files = expand_trusted_files(manifest["sgx"]["trusted_files"])     # ((uri, sha256), ...) sorted by uri
    print(file_set_digest(files))                                      # one hash to compare two builds

MRENCLAVE covers the signed manifest, and the signed manifest lists every trusted file with its sha256. Two
builds give the same MRENCLAVE only if they expand to the same (URI, sha256) list; this is that list, computed as
graminelibos.manifest.TrustedFile.expand_directory does (Gramine 1.8/1.9): a URI ending in "/" is a directory,
its entries are visited in sorted order, entries that are neither regular files nor directories or that are not
readable are skipped, symlinked directories are not descended into, files are hashed through symlinks, and a URI
listed twice counts once. `root` measures a tree staged elsewhere as if it were at "/" (gramine-sgx-sign's
--chroot), so a build can be checked before it is installed at its fixed paths.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from enclavefl.errors import ManifestHardeningError


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class TrustedFile:
    uri: str
    sha256: str


def expand_trusted_files(entries: Iterable[object], *, root: Path | None = None) -> tuple[TrustedFile, ...]:
    """Every file the entries name, with its sha256, sorted by URI. Raises ManifestHardeningError."""
    found: dict[str, TrustedFile] = {}
    for entry in entries:
        if isinstance(entry, str):
            uri, given = entry, None
        elif isinstance(entry, dict) and set(entry) <= {"uri", "sha256"} and isinstance(entry.get("uri"), str):
            uri, given = entry["uri"], entry.get("sha256")
        else:
            raise ManifestHardeningError(f"unknown trusted file entry {entry!r}")
        for path, file_uri in _expand(uri, root):
            if file_uri not in found:
                found[file_uri] = TrustedFile(uri=file_uri, sha256=given or _sha256(path))
    return tuple(sorted(found.values()))


def expand_directory(directory: Path, *, as_path: str) -> tuple[TrustedFile, ...]:
    """The files of `directory` as Gramine would measure them if it were at `as_path` (no trailing "/")."""
    if not directory.is_dir():
        raise ManifestHardeningError(f"{directory} is not a directory")
    return tuple(sorted(TrustedFile(uri=uri, sha256=_sha256(path)) for path, uri in _walk(directory, as_path)))


def file_set_digest(files: Iterable[TrustedFile]) -> str:
    """sha256 over "uri sha256" lines: equal for two builds exactly when their measured file sets are equal."""
    digest = hashlib.sha256()
    for item in sorted(files):
        digest.update(f"{item.uri} {item.sha256}\n".encode())
    return digest.hexdigest()


def _expand(uri: str, root: Path | None) -> Iterator[tuple[Path, str]]:
    if not uri.startswith("file:"):
        raise ManifestHardeningError(f"trusted file {uri!r} is not a file: URI")
    inner = uri.removeprefix("file:")
    real = Path(inner) if root is None else root / inner.lstrip("/")
    if uri.endswith("/"):
        if not real.is_dir():
            raise ManifestHardeningError(f"trusted URI {uri!r} ends with '/' but {real} is not a directory")
        yield from _walk(real, inner.rstrip("/") or "/")
        return
    if real.is_dir():
        raise ManifestHardeningError(f"trusted URI {uri!r} is a directory but does not end with '/'")
    if not real.is_file():
        raise ManifestHardeningError(f"trusted file {uri!r}: {real} does not exist")
    yield real, uri


def _walk(directory: Path, inner: str) -> Iterator[tuple[Path, str]]:
    for child in sorted(directory.glob("*")):
        if not (child.is_file() or child.is_dir()) or not os.access(child, os.R_OK):
            continue
        child_inner = f"{inner.rstrip('/')}/{child.name}"
        if child.is_dir():
            if not child.is_symlink():  # Gramine does not descend into symlinked directories
                yield from _walk(child, child_inner)
            continue
        yield child, f"file:{child_inner}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

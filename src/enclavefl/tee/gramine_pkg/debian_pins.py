"""Which Debian packages a release's runtime files come from, checked against the versions and hashes it pins.

    observed = observe_packages(Path("/"), ["/usr/lib/python3.11/os.py", "/usr/lib/x86_64-linux-gnu/libz.so.1"])
    check_pins(observed, pinned=inputs.debian.packages)   # raises RuntimePinMismatch naming every difference

Read from the root filesystem the release is built in, without apt or dpkg: dpkg's file lists
(var/lib/dpkg/info/*.list) say which package installed a file, its status file the installed version, and apt's
package indexes (var/lib/apt/lists/*_Packages, authenticated through the signed Release file when apt fetched
them) the sha256 of that version's .deb, which apt checked the download against. A release whose runtime came
from another version or another archive is refused before anything is measured.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

from enclavefl.errors import RuntimePinMismatch
from enclavefl.tee.gramine_pkg.release_inputs import DebianPackage

_DPKG_INFO: Final = "var/lib/dpkg/info"
_DPKG_STATUS: Final = "var/lib/dpkg/status"
_APT_LISTS: Final = "var/lib/apt/lists"
# merged /usr (Debian 12): a package may list /lib/x/y while the file is reached as /usr/lib/x/y
_MERGED: Final = (("/usr/lib/", "/lib/"), ("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"))


def _aliases(path: str) -> Iterator[str]:
    yield path
    for usr, top in _MERGED:
        if path.startswith(usr):
            yield top + path[len(usr) :]
        elif path.startswith(top):
            yield usr + path[len(top) :]


def file_owners(root: Path) -> dict[str, str]:
    """Every path dpkg installed in `root` -> its package name (architecture qualifier dropped)."""
    owners: dict[str, str] = {}
    info = root / _DPKG_INFO
    if not info.is_dir():
        raise RuntimePinMismatch(f"{info} does not exist: {root} is not a Debian root filesystem")
    for listing in sorted(info.glob("*.list")):
        package = listing.name.removesuffix(".list").split(":")[0]
        for line in listing.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            owners.setdefault(line, package)
    return owners


def _stanzas(path: Path) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields = {}
        elif not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        yield fields


def installed_versions(root: Path) -> dict[str, str]:
    """Package -> installed version, from dpkg's status file."""
    versions: dict[str, str] = {}
    for fields in _stanzas(root / _DPKG_STATUS):
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            versions[fields["Package"]] = fields.get("Version", "")
    return versions


def index_hashes(root: Path) -> dict[tuple[str, str], str]:
    """(package, version) -> sha256 of its .deb, from apt's package indexes in `root`."""
    hashes: dict[tuple[str, str], str] = {}
    for index in sorted((root / _APT_LISTS).glob("*_Packages")):
        for fields in _stanzas(index):
            if {"Package", "Version", "SHA256"} <= fields.keys():
                hashes.setdefault((fields["Package"], fields["Version"]), fields["SHA256"])
    return hashes


def observe_packages(root: Path, files: Iterable[str], *, also: Iterable[str] = ()) -> tuple[DebianPackage, ...]:
    """The packages that installed `files` (paths inside `root`) and the packages named in `also`, as installed.

    Raises RuntimePinMismatch for a file no package installed, a package that is not installed, or a version
    apt's indexes do not list (the indexes were deleted: keep var/lib/apt/lists until the release is built)."""
    owners, versions, hashes = file_owners(root), installed_versions(root), index_hashes(root)
    names: set[str] = set(also)
    orphans: list[str] = []
    for path in files:
        real = "/" + os.path.relpath(os.path.realpath(root / path.lstrip("/")), os.path.realpath(root))
        owner = next((owners[a] for p in (path, real) for a in _aliases(p) if a in owners), None)
        if owner is None:
            orphans.append(path)
        else:
            names.add(owner)
    if orphans:
        raise RuntimePinMismatch(f"no Debian package installed {len(orphans)} runtime file(s), e.g. {orphans[:3]}")
    observed = []
    for name in sorted(names):
        version = versions.get(name)
        if version is None:
            raise RuntimePinMismatch(f"Debian package {name} is not installed in {root}")
        sha256 = hashes.get((name, version))
        if sha256 is None:
            raise RuntimePinMismatch(
                f"apt's indexes in {root} do not list {name} {version}: keep var/lib/apt/lists until the release is "
                "assembled (mmdebstrap --skip=cleanup/apt/lists)"
            )
        observed.append(DebianPackage(name=name, version=version, sha256=sha256))
    return tuple(observed)


def check_pins(observed: Iterable[DebianPackage], *, pinned: Iterable[DebianPackage]) -> None:
    """Raise RuntimePinMismatch unless every observed package is pinned with the same version and sha256."""
    pins: Mapping[str, DebianPackage] = {p.name: p for p in pinned}
    differences = []
    for package in observed:
        pin = pins.get(package.name)
        if pin is None:
            differences.append(f"{package.name} {package.version} (not pinned)")
        elif (pin.version, pin.sha256) != (package.version, package.sha256):
            differences.append(
                f"{package.name} {package.version} sha256 {package.sha256[:16]}... "
                f"(pinned {pin.version} sha256 {pin.sha256[:16]}...)"
            )
    if differences:
        raise RuntimePinMismatch(
            "the root filesystem's runtime differs from the release's pinned Debian packages: "
            + "; ".join(differences)
            + " (another archive state gives another runtime: record the new pins deliberately)"
        )

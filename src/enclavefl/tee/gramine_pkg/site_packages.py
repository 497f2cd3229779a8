"""Turn the enclave's distribution allow-list into the site-packages paths Gramine should trust.

Runs with the enclave venv's interpreter on the build host: pip's RECORD files say exactly which
top-level directories and files each distribution installed (`numpy/`, `numpy.libs/`,
`dcap_qvl-0.7.0.dist-info/`, `typing_extensions.py`), whatever the installed versions. enclavefl itself is
trusted file by file: only the modules of the enclave's import closure (tee/gramine_pkg/tcb.py), so editing
data-owner, model-owner or CLI code does not change MRENCLAVE.
"""

from __future__ import annotations

import importlib.metadata
import os
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg.manifest import AGGREGATOR_DISTRIBUTIONS
from enclavefl.tee.gramine_pkg.tcb import ROOT_PACKAGE as ENCLAVEFL
from enclavefl.tee.gramine_pkg.tcb import enclave_modules

# Installed alongside but never imported by the aggregator; reported as neither trusted nor extra.
_INSTALLER_ENTRIES = ("pip", "setuptools", "_distutils_hack", "pkg_resources", "__pycache__")


@dataclass(frozen=True, slots=True, kw_only=True)
class SitePackagesPlan:
    """Trusted site-packages entries (directories end with '/') and importable leftovers."""

    site_packages: str
    trusted: tuple[str, ...]
    untrusted: tuple[str, ...]  # importable names the enclave will refuse to open


def plan_site_packages(
    distributions: Iterable[str] = AGGREGATOR_DISTRIBUTIONS, *, site_packages: str | None = None
) -> SitePackagesPlan:
    """Resolve `distributions` in `site_packages` (default: the running interpreter's); raises ConfigError."""
    if site_packages is None:
        paths = sysconfig.get_paths()
        if os.path.normpath(paths["platlib"]) != os.path.normpath(paths["purelib"]):
            raise ConfigError(f"purelib and platlib differ ({paths['purelib']}, {paths['platlib']}); use one dir")
        site_packages = paths["purelib"]
    # Not realpath: trusted URIs must match the paths the venv mount maps to.
    site_packages = os.path.normpath(site_packages)
    trusted: set[str] = set()
    for name in distributions:
        entries = _top_level_entries(name, site_packages)
        if name == ENCLAVEFL:  # only the enclave's own modules, file by file: the rest of enclavefl is not its code
            entries = enclave_trusted_files(os.path.join(site_packages, ENCLAVEFL))
        trusted.update(entries)
    covered = {os.path.relpath(entry, site_packages).split(os.sep)[0] for entry in trusted}
    untrusted = sorted(
        entry
        for entry in os.listdir(site_packages)
        if entry not in covered
        and not entry.endswith((".dist-info", ".pth", ".egg-info"))
        and not entry.startswith(_INSTALLER_ENTRIES)
    )
    return SitePackagesPlan(site_packages=site_packages, trusted=tuple(sorted(trusted)), untrusted=tuple(untrusted))


def enclave_trusted_files(package_root: str) -> set[str]:
    """The enclave's import closure as files under an installed `enclavefl` package directory."""
    return {os.path.join(package_root, *m.path.split("/")) for m in enclave_modules(package_dir=Path(package_root))}


def _top_level_entries(name: str, site_packages: str) -> set[str]:
    found = list(importlib.metadata.distributions(name=name, path=[site_packages]))
    if not found:  # an editable install has its metadata elsewhere on sys.path (the check below names it)
        found = list(importlib.metadata.distributions(name=name))
    if not found:
        raise ConfigError(f"distribution {name!r} is not installed in {site_packages}; the enclave needs it")
    dist = found[0]
    home = os.path.normpath(str(dist.locate_file("")))
    if home != site_packages:  # found through a source tree on sys.path: an egg-info beside the sources
        raise ConfigError(
            f"{name} is installed in editable/development mode (its metadata is under {home}); the enclave can only"
            " trust files inside the venv: `pip install` it without -e"
        )
    files = dist.files
    if not files:
        raise ConfigError(f"distribution {name!r} has no RECORD; reinstall it with pip")
    packages = {record.parts[0] for record in files if len(record.parts) == 2 and record.name == "__init__.py"}
    entries: set[str] = set()
    for record in files:
        parts = record.parts
        if not parts or parts[0] == "..":  # console scripts under bin/: never run in the enclave
            continue
        top = parts[0]
        if "__pycache__" in parts:  # bytecode is never measured: the release carries none, the enclave runs -B
            continue
        if top.endswith(".pth"):
            raise ConfigError(
                f"{name} is installed in editable/development mode ({top}); the enclave can only trust"
                " files inside the venv: `pip install` it without -e"
            )
        # Namespace packages (google/) are shared: trust google/protobuf/, not all of google/.
        namespace = len(parts) > 2 and top not in packages and not top.endswith((".dist-info", ".libs"))
        relative = parts[:2] if namespace else (top,)
        path = os.path.normpath(str(dist.locate_file(os.path.join(*relative))))
        expected_parent = os.path.join(site_packages, *relative[:-1])
        if os.path.dirname(path) != expected_parent:
            raise ConfigError(f"{name} is installed at {path}, outside the venv's site-packages {site_packages}")
        entries.add(path + "/" if len(parts) > len(relative) else path)
    return entries

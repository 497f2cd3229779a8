"""The third-party part of the enclave's TCB: which distributions the enclave's modules need, and which they load.

    distributions = enclave_distributions(module_names, third_party_names)   # for tee/gramine_pkg/tcb.py

The distributions are those the closure imports (statically, anywhere in a module) and, recursively, what they
declare they require (extras excluded, markers evaluated here): the set pip installs for the enclave and the manifest
must trust. A fresh interpreter imports every module of the closure to mark which of them are actually loaded.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enclavefl.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class EnclaveDistribution:
    name: str  # canonical distribution name, e.g. grpcio
    version: str
    size_bytes: int  # the files its RECORD lists (what Gramine would trust)
    files: int
    imported: bool  # loaded by the closure (False: trusted only as another distribution's requirement)


def enclave_distributions(
    module_names: tuple[str, ...], top_level_names: Iterable[str]
) -> tuple[EnclaveDistribution, ...]:
    """The distributions that `top_level_names` (imported by the enclavefl modules `module_names`) come from, with
    what they require, sorted by name; each marked by whether importing `module_names` loads it."""
    loaded = _distributions_loaded_by(module_names)
    required = _requirement_closure(_distributions_of(top_level_names, loaded=loaded))
    return tuple(_describe(name, imported=name in loaded) for name in sorted(required))


def _distributions_of(top_level_names: Iterable[str], *, loaded: frozenset[str]) -> set[str]:
    owners = importlib.metadata.packages_distributions()
    found: set[str] = set()
    for name in top_level_names:
        dists = {_canonical(d) for d in owners.get(name) or ()}
        if not dists:
            raise ConfigError(f"the enclave imports {name!r}, which no installed distribution provides")
        # A namespace package (google/) has several owners (protobuf, and google-auth when something else
        # installed it): the enclave needs those whose files it loads, not whatever shares the name here.
        found.update(dists & loaded if len(dists) > 1 and dists & loaded else dists)
    return found


def _requirement_closure(roots: Iterable[str]) -> set[str]:
    """`roots` and every distribution they require, recursively (no extras; markers for this interpreter)."""
    from packaging.requirements import Requirement  # build-host tooling only; never imported in the enclave

    closure: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        for text in importlib.metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(_canonical(requirement.name))
    return closure


_PROBE: Final = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted({getattr(m, '__file__', None) or '' for m in list(sys.modules.values())} - {''})))
"""


@functools.lru_cache(maxsize=16)
def _distributions_loaded_by(module_names: tuple[str, ...]) -> frozenset[str]:
    """Canonical names of the site-packages distributions whose files a fresh process loads for `module_names`
    (cached: that probe takes about a second, and one process asks for a closure several times)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own fixed probe
        [sys.executable, "-c", _PROBE, json.dumps(module_names)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"importing the enclave's modules failed:\n{done.stderr.strip()}")
    roots = [Path(p).resolve() for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}]
    owners = importlib.metadata.packages_distributions()
    loaded: set[str] = set()
    for file in json.loads(done.stdout):
        path = Path(file).resolve()
        root = next((r for r in roots if path.is_relative_to(r)), None)
        if root is None:  # the standard library, or enclavefl itself (counted as modules)
            continue
        top = path.relative_to(root).parts[0].removesuffix(".py").split(".")[0]
        dists = owners.get(top)
        if not dists:
            raise ConfigError(f"the enclave loads {file}, which no installed distribution provides")
        loaded.update(_file_owners(path, dists) if len(dists) > 1 else {_canonical(dists[0])})
    return frozenset(loaded)


def _file_owners(path: Path, dists: Iterable[str]) -> set[str]:
    """Of the distributions sharing a namespace package, the one(s) whose RECORD lists `path` (all if none do)."""
    names = {_canonical(d) for d in dists}
    return {name for name in names if path in _installed_files(name)} or names


@functools.cache
def _installed_files(name: str) -> frozenset[Path]:
    dist = importlib.metadata.distribution(name)
    return frozenset(Path(str(dist.locate_file(f))).resolve() for f in dist.files or ())


def _describe(name: str, *, imported: bool) -> EnclaveDistribution:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(f"distribution {name!r} is in the enclave's list but not installed") from exc
    records = [r for r in dist.files or () if r.parts and r.parts[0] != ".."]  # bin/ scripts never run inside
    size = sum(r.size if r.size is not None else _size_on_disk(dist, r) for r in records)
    return EnclaveDistribution(name=name, version=dist.version, size_bytes=size, files=len(records), imported=imported)


def _size_on_disk(dist: importlib.metadata.Distribution, record: importlib.metadata.PackagePath) -> int:
    path = Path(str(dist.locate_file(record)))
    return path.stat().st_size if path.is_file() else 0


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")

"""release.toml: every input of an enclave release besides the source tree and the job, recorded in the release.

    inputs = load_release_inputs(Path("release/release.toml"))
    inputs.enclave.enclave_size, inputs.debian.packages[0].version, inputs.gramine.libsysdb_sha256
    Path("release.toml").write_text(dump_release_inputs(inputs))

Both ways to build a release (packaging/enclave/Containerfile and packaging/enclave/build-release.sh) read this
file and nothing else: the Debian packages the runtime comes from (name, version and the sha256 of the .deb that
Debian's signed index names), the hash-pinned wheels of the enclave venv and of the build backend, the Gramine
files that are measured (by sha256), the enclave's settings and the job's digest. A data owner rebuilds from a
release's release.toml and job/job.toml and gets the same MRENCLAVE (packaging/enclave/rebuild.sh).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from enclavefl.errors import ReleaseInputError
from enclavefl.tee.gramine_pkg.manifest import ManifestParams

RELEASE_FILE: Final = "release.toml"
FORMAT: Final = 1
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_PACKAGE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_VERSION_RE: Final = re.compile(r"^[0-9A-Za-z.+~:-]+$")
# one requirement with its hash, as pip's --require-hashes takes it: "name==version --hash=sha256:HEX"
_REQUIREMENT_RE: Final = re.compile(r"^[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+ --hash=sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class DebianPackage:
    name: str
    version: str
    sha256: str  # of the .deb, as Debian's signed Packages index gives it (apt checks every download against it)


@dataclass(frozen=True, slots=True, kw_only=True)
class DebianInputs:
    suite: str
    sources: tuple[str, ...]  # apt source lines for the host procedure ("URI SUITE COMPONENT")
    base_image: str  # the Containerfile's base, by digest ("debian@sha256:..."); "" until a release records it
    packages: tuple[DebianPackage, ...]  # every package a file of the runtime comes from, plus pip's wheel


@dataclass(frozen=True, slots=True, kw_only=True)
class GramineInputs:
    version: str
    libpal_sgx_sha256: str  # the SGX PAL gramine-sgx-sign measures; gramine-sgx must load the same bytes
    libsysdb_sha256: str  # the LibOS (loader.entrypoint), copied into the release
    runtime_digest: str  # file-set digest of Gramine's patched glibc runtime, copied into the release


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseInputs:
    enclavefl_version: str
    debian: DebianInputs
    requirements: tuple[str, ...]  # the enclave venv, "name==version --hash=sha256:..." each
    build_requirements: tuple[str, ...]  # setuptools and wheel for building enclavefl's own wheel
    gramine: GramineInputs
    enclave: ManifestParams
    job_sha256: str

    def __post_init__(self) -> None:
        for requirement in (*self.requirements, *self.build_requirements):
            if not _REQUIREMENT_RE.match(requirement):
                raise ReleaseInputError(f"requirement {requirement!r} is not 'name==version --hash=sha256:HEX'")
        for package in self.debian.packages:
            if not (_PACKAGE_RE.match(package.name) and _VERSION_RE.match(package.version)):
                raise ReleaseInputError(f"debian package {package.name!r} {package.version!r} is not a name/version")
            _sha256(f"debian package {package.name} sha256", package.sha256)
        for name in ("libpal_sgx_sha256", "libsysdb_sha256", "runtime_digest"):
            _sha256(f"gramine.{name}", getattr(self.gramine, name))
        _sha256("job.sha256", self.job_sha256)
        if self.debian.base_image and "@sha256:" not in self.debian.base_image:
            raise ReleaseInputError(
                f"debian.base_image {self.debian.base_image!r}: name the image by digest (@sha256:)"
            )

    def apt_pins(self) -> list[str]:
        """`name=version` for apt-get install / mmdebstrap --include."""
        return [f"{p.name}={p.version}" for p in self.debian.packages]


def _sha256(what: str, value: str) -> None:
    if not _SHA256_RE.match(value):
        raise ReleaseInputError(f"{what}: expected 64 lowercase hex digits, got {value!r}")


def load_release_inputs(path: Path) -> ReleaseInputs:
    """Read and check a release.toml; ReleaseInputError names what is missing or malformed."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseInputError(f"{path}: cannot read release inputs: {exc}") from exc
    try:
        if doc["format"] != FORMAT:
            raise ReleaseInputError(f"{path}: format {doc['format']!r}, this enclavefl reads format {FORMAT}")
        debian, gramine, enclave = doc["debian"], doc["gramine"], doc.get("enclave", {})
        return ReleaseInputs(
            enclavefl_version=str(doc["enclavefl_version"]),
            debian=DebianInputs(
                suite=str(debian["suite"]),
                sources=tuple(str(s) for s in debian["sources"]),
                base_image=str(debian.get("base_image", "")),
                packages=tuple(sorted(DebianPackage(**p) for p in debian["packages"])),
            ),
            requirements=tuple(str(r) for r in doc["python"]["requirements"]),
            build_requirements=tuple(str(r) for r in doc["python"]["build_requirements"]),
            gramine=GramineInputs(**gramine),
            enclave=ManifestParams(**enclave),
            job_sha256=str(doc["job"]["sha256"]),
        )
    except KeyError as exc:
        raise ReleaseInputError(f"{path}: missing key {exc}") from exc
    except TypeError as exc:  # an unknown or missing field of a table
        raise ReleaseInputError(f"{path}: {exc}") from exc


def dump_release_inputs(inputs: ReleaseInputs) -> str:
    """release.toml text for `inputs` (the form load_release_inputs reads)."""
    enclave = inputs.enclave
    settings: list[tuple[str, Any]] = [
        ("enclave_size", enclave.enclave_size),
        ("rpc_workers", enclave.rpc_workers),
        ("isv_prod_id", enclave.isv_prod_id),
        ("isv_svn", enclave.isv_svn),
        ("port", enclave.port),
        ("log_level", enclave.log_level),
    ]
    if enclave.max_threads is not None:
        settings.append(("max_threads", enclave.max_threads))
    lines = [
        '# enclavefl release inputs (docs/gramine.md, "Release"): with the source tree and job/job.toml, all that',
        "# determines MRENCLAVE. Written by `enclavefl enclave init`; read by packaging/enclave/build-release.sh,",
        "# the Containerfile and rebuild.sh. Editing it makes another enclave.",
        f"format = {FORMAT}",
        f"enclavefl_version = {_q(inputs.enclavefl_version)}",
        "",
        "[debian]",
        f"suite = {_q(inputs.debian.suite)}",
        f"base_image = {_q(inputs.debian.base_image)}",
        "sources = [",
        *(f"  {_q(s)}," for s in inputs.debian.sources),
        "]",
        "packages = [",
        *(
            f"  {{ name = {_q(p.name)}, version = {_q(p.version)}, sha256 = {_q(p.sha256)} }},"
            for p in inputs.debian.packages
        ),
        "]",
        "",
        "[python]",
        "requirements = [",
        *(f"  {_q(r)}," for r in inputs.requirements),
        "]",
        "build_requirements = [",
        *(f"  {_q(r)}," for r in inputs.build_requirements),
        "]",
        "",
        "[gramine]",
        f"version = {_q(inputs.gramine.version)}",
        f"libpal_sgx_sha256 = {_q(inputs.gramine.libpal_sgx_sha256)}",
        f"libsysdb_sha256 = {_q(inputs.gramine.libsysdb_sha256)}",
        f"runtime_digest = {_q(inputs.gramine.runtime_digest)}",
        "",
        "[enclave]",
        *(f"{key} = {_q(value) if isinstance(value, str) else value}" for key, value in settings),
        "",
        "[job]",
        f"sha256 = {_q(inputs.job_sha256)}",
    ]
    return "\n".join(lines) + "\n"


def read_requirements(path: Path) -> tuple[str, ...]:
    """The pinned lines of a requirements file (`name==v \\` newline `--hash=sha256:...`) as one string each."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReleaseInputError(f"{path}: {exc}") from exc
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#")))
    pins = tuple(" ".join(line.split()) for line in joined.splitlines() if line.strip())
    for pin in pins:
        if not _REQUIREMENT_RE.match(pin):
            raise ReleaseInputError(f"{path}: {pin!r} is not 'name==version --hash=sha256:HEX' (one hash per line)")
    return pins


def _q(value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise ReleaseInputError(f"release input {value!r} contains a quote, backslash or newline")
    return f'"{value}"'

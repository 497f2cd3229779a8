"""Lay out an enclave release from the pinned root filesystem it is built in: runtime, venv, manifest, scripts.

    release = assemble_release(Path("/release"))     # in the build root, with the enclave venv's interpreter
    release.trusted, release.libraries, release.packages

The release directory then holds everything the enclave trusts, and the manifest names it by relative URIs:

    release.toml                  the recorded inputs (enclavefl enclave init)
    job/job.toml                  the job, measured
    job/job.json                  the same job in its canonical form (written here), the one the enclave loads
    runtime/usr/lib/python3.11/   the standard library of the root's python3.11 (no __pycache__)
    runtime/usr/lib/x86_64-linux-gnu/   the native libraries the interpreter and the trusted extension modules link
    venv/                         the enclave venv (interpreter copied, not linked; hash-pinned wheels)
    gramine/                      Gramine's LibOS and patched glibc (`add_gramine_files`, at signing time)
    aggregator.manifest.template  rendered here; gramine-manifest hashes it into aggregator.manifest
    run.sh, README.txt

Every file comes from the root (`root`, "/" when run inside it), never from the host that started the build, and
the root's packages must be the pinned ones (debian_pins.py). Nothing is compiled: no .pyc is written or copied.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from enclavefl.core.jobfile import load_job
from enclavefl.errors import JobSpecError, ReleaseInputError
from enclavefl.tee.gramine_pkg.debian_pins import check_pins, observe_packages
from enclavefl.tee.gramine_pkg.manifest import (
    AGGREGATOR_DISTRIBUTIONS,
    GRAMINE_RUNTIME,
    LIBDIR_MOUNT,
    STDLIB_MOUNT,
    TEMPLATE_NAME,
    VENV_MOUNT,
    check_release_path,
    fill_markers,
    render_release_manifest,
)
from enclavefl.tee.gramine_pkg.native_libs import elf_files_under, plan_native_libraries
from enclavefl.tee.gramine_pkg.release_inputs import RELEASE_FILE, DebianPackage, load_release_inputs
from enclavefl.tee.gramine_pkg.site_packages import SitePackagesPlan, plan_site_packages

RUNTIME_DIR: Final = "runtime"
VENV_DIR: Final = "venv"
JOB_DIR: Final = "job"
JOB_FILE: Final = "job/job.toml"
CANONICAL_JOB_FILE: Final = "job/job.json"
RUN_SCRIPT: Final = "run.sh"
README: Final = "README.txt"
# pip's own wheel decides what pip writes into every dist-info (RECORD, INSTALLER): pinned with the runtime.
BUILD_PACKAGES: Final = ("python3-pip-whl",)
_SKIPPED_DIRS: Final = frozenset({"__pycache__"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AssembledRelease:
    directory: Path
    trusted: tuple[str, ...]  # release-relative sgx.trusted_files entries (directories end with "/")
    libraries: tuple[str, ...]  # native libraries copied into runtime/, by soname
    packages: tuple[DebianPackage, ...]  # the Debian packages those files came from, as observed
    stdlib_files: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimePlan:
    """What a release takes from the root: found before anything is copied."""

    root: Path
    venv: Path  # inside root
    stdlib: Path
    libraries: tuple[str, ...]  # paths inside root, by the soname the loader looks up
    site_packages: SitePackagesPlan

    def root_files(self) -> list[str]:
        """The root's files the runtime copies (as "/..." paths inside the root), for the package check."""
        sources = [str(self.root / "usr/bin/python3.11"), *self.libraries, *_files_under(self.stdlib)]
        return [f"/{os.path.relpath(p, self.root)}" for p in sources]


def plan_runtime(*, root: Path, venv: str) -> RuntimePlan:
    """Find the venv, its trusted site-packages, the stdlib and the native closure in `root`."""
    root_venv = root / venv.lstrip("/")
    plan = plan_site_packages(AGGREGATOR_DISTRIBUTIONS, site_packages=str(_single_site_packages(root_venv)))
    stdlib = root / STDLIB_MOUNT.lstrip("/")
    interpreter = root_venv / "bin" / "python3"
    if interpreter.is_symlink() or not interpreter.is_file():
        raise ReleaseInputError(f"{interpreter} must be a copy of the interpreter (python3.11 -m venv --copies)")
    if _sha256(interpreter) != _sha256(root / "usr/bin/python3.11"):
        raise ReleaseInputError(f"{interpreter} is not a copy of the root's /usr/bin/python3.11: build the venv there")
    libraries = plan_native_libraries(
        interpreter=str(interpreter),
        extensions=elf_files_under([str(stdlib), *plan.trusted]),
        library_dirs=[str(root / LIBDIR_MOUNT.lstrip("/"))],
        bundled_dirs=[plan.site_packages],
    )
    return RuntimePlan(root=root, venv=root_venv, stdlib=stdlib, libraries=libraries, site_packages=plan)


def write_canonical_job(job_toml: Path, target: Path) -> None:
    """Write `job_toml`'s job in its canonical form, the one the enclave loads (core/job_canonical.py).

    The conversion is trusted by nobody: the enclave parses the result strictly and attests the digest of what it
    parsed, which data owners compare with the digest of their own job.toml. A rebuild converts the same job.toml
    to the same bytes, so MRENCLAVE (which measures both files) is reproduced.
    """
    try:
        job = load_job(job_toml)
    except JobSpecError as exc:
        raise ReleaseInputError(f"{job_toml}: {exc} (a release's job must be self-contained)") from None
    target.write_text(job.canonical_text() + "\n", encoding="utf-8")


def observe_runtime_packages(*, root: Path, venv: str) -> tuple[DebianPackage, ...]:
    """The Debian packages (with versions and .deb hashes) the runtime of a release built in `root` comes from."""
    return observe_packages(root, plan_runtime(root=root, venv=venv).root_files(), also=BUILD_PACKAGES)


def assemble_release(directory: Path, *, root: Path = Path("/"), venv: str = VENV_MOUNT) -> AssembledRelease:
    """Fill `directory` (which holds release.toml and job/job.toml) from `root`; raises ReleaseInputError."""
    inputs = load_release_inputs(directory / RELEASE_FILE)
    job = directory / JOB_FILE
    if not job.is_file() or hashlib.sha256(job.read_bytes()).hexdigest() != inputs.job_sha256:
        raise ReleaseInputError(f"{job} is missing or is not the job release.toml records (sha256 {inputs.job_sha256})")
    write_canonical_job(job, directory / CANONICAL_JOB_FILE)
    plan = plan_runtime(root=root, venv=venv)
    packages = observe_packages(root, plan.root_files(), also=BUILD_PACKAGES)
    check_pins(packages, pinned=inputs.debian.packages)  # before anything is copied

    stdlib_files = _copy_tree(plan.stdlib, directory / RUNTIME_DIR / STDLIB_MOUNT.lstrip("/"))
    target_libdir = directory / RUNTIME_DIR / LIBDIR_MOUNT.lstrip("/")
    _fresh(target_libdir)
    for path in plan.libraries:
        shutil.copyfile(path, target_libdir / Path(path).name)  # content through the link: the soname's file
    _copy_tree(plan.venv, directory / VENV_DIR, symlinks=True)

    venv_prefix = os.path.join(os.path.normpath(str(plan.venv)), "")
    site_entries = [
        f"{VENV_DIR}/" + check_release_path("site-packages entry", entry.removeprefix(venv_prefix))
        for entry in sorted(plan.site_packages.trusted)
    ]
    trusted = (
        f"{VENV_DIR}/bin/python3",
        f"{VENV_DIR}/pyvenv.cfg",
        f"{GRAMINE_RUNTIME}/",
        f"{RUNTIME_DIR}{STDLIB_MOUNT}/",
        f"{RUNTIME_DIR}{LIBDIR_MOUNT}/",
        *site_entries,
        f"{JOB_DIR}/",
    )
    (directory / TEMPLATE_NAME).write_text(render_release_manifest(inputs.enclave, trusted=trusted), encoding="utf-8")
    _write_scripts(directory)
    return AssembledRelease(
        directory=directory,
        trusted=trusted,
        libraries=tuple(Path(p).name for p in plan.libraries),
        packages=packages,
        stdlib_files=stdlib_files,
    )


def _single_site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if len(found) != 1:
        raise ReleaseInputError(f"{venv} must hold one lib/python3.X/site-packages, found {[str(p) for p in found]}")
    return found[0]


def _fresh(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def _files_under(directory: Path) -> list[str]:
    return sorted(
        os.path.join(parent, name)
        for parent, dirs, names in os.walk(directory)
        if not _SKIPPED_DIRS & set(Path(parent).parts)
        for name in names
        if not os.path.islink(os.path.join(parent, name))
    )


def _copy_tree(source: Path, target: Path, *, symlinks: bool = False) -> int:
    """Copy regular files (and, when `symlinks`, links as links); skip __pycache__. Returns the files copied.

    Without `symlinks` every link is left out: Debian's stdlib links sitecustomize.py to /etc, outside the root's
    runtime; inside the enclave Python then finds no sitecustomize, as it should."""
    _fresh(target)
    copied = 0
    for parent, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        relative = Path(parent).relative_to(source)
        (target / relative).mkdir(exist_ok=True)
        for name in sorted([*names, *(d for d in dirs if os.path.islink(os.path.join(parent, d)))]):
            origin = Path(parent, name)
            if origin.is_symlink():
                if symlinks:
                    (target / relative / name).symlink_to(os.readlink(origin))
                continue
            shutil.copyfile(origin, target / relative / name)
            shutil.copymode(origin, target / relative / name)
            copied += 1
    return copied


def _write_scripts(directory: Path) -> None:
    for name, markers in ((RUN_SCRIPT, {}), (README, {"TEMPLATE": TEMPLATE_NAME})):
        text = resources.files(__package__).joinpath(f"{name}.template").read_text(encoding="utf-8")
        (directory / name).write_text(fill_markers(text, markers), encoding="utf-8")
    (directory / RUN_SCRIPT).chmod(0o755)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

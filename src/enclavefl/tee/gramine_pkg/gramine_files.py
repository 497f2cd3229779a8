"""Gramine's measured files in a release: the LibOS and the patched glibc, copied in and checked by sha256.

    observed = add_gramine_files(release_dir, libos=..., runtime=..., libpal_sgx=...)   # raises on a mismatch

MRENCLAVE covers the SGX PAL (gramine-sgx-sign measures it as the enclave's first pages), the LibOS (the manifest's
loader.entrypoint sha256) and every file of the runtime directory (trusted files). The release carries the LibOS
and the runtime (release-relative URIs); the PAL stays in the Gramine installation, and gramine-sgx loads its own,
so release.toml pins all three by sha256: a build with any other Gramine stops here, naming both values, instead
of producing an enclave nobody can reproduce.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from enclavefl.errors import ReleaseInputError
from enclavefl.tee.gramine_pkg.fileset import expand_directory, file_set_digest
from enclavefl.tee.gramine_pkg.manifest import GRAMINE_LIBOS, GRAMINE_RUNTIME
from enclavefl.tee.gramine_pkg.release_inputs import RELEASE_FILE, GramineInputs, load_release_inputs


def observe_gramine(*, libos: Path, runtime: Path, libpal_sgx: Path, version: str) -> GramineInputs:
    """The pins of an installed Gramine: sha256 of its SGX PAL and LibOS, file-set digest of its runtime dir."""
    for path in (libos, libpal_sgx):
        if not path.is_file():
            raise ReleaseInputError(f"{path} does not exist: is Gramine installed with SGX support (-Dsgx=enabled)?")
    if not runtime.is_dir():
        raise ReleaseInputError(f"{runtime} is not Gramine's glibc runtime directory")
    files = expand_directory(runtime, as_path=GRAMINE_RUNTIME)  # the same digest wherever Gramine is installed
    return GramineInputs(
        version=version,
        libpal_sgx_sha256=hashlib.sha256(libpal_sgx.read_bytes()).hexdigest(),
        libsysdb_sha256=hashlib.sha256(libos.read_bytes()).hexdigest(),
        runtime_digest=file_set_digest(files),
    )


def add_gramine_files(directory: Path, *, libos: Path, runtime: Path, libpal_sgx: Path) -> GramineInputs:
    """Copy the LibOS and runtime into the release after checking all three against release.toml."""
    pinned = load_release_inputs(directory / RELEASE_FILE).gramine
    observed = observe_gramine(libos=libos, runtime=runtime, libpal_sgx=libpal_sgx, version=pinned.version)
    if observed != pinned:
        differing = [
            f"{name} {getattr(observed, name)} (pinned {getattr(pinned, name)})"
            for name in ("libpal_sgx_sha256", "libsysdb_sha256", "runtime_digest")
            if getattr(observed, name) != getattr(pinned, name)
        ]
        raise ReleaseInputError(
            f"this Gramine is not the one release.toml pins (Gramine {pinned.version}): " + "; ".join(differing)
        )
    target_runtime = directory / GRAMINE_RUNTIME
    if target_runtime.exists():
        shutil.rmtree(target_runtime)
    shutil.copytree(runtime, target_runtime)  # links resolved: some point out of the runtime dir (../../../)
    shutil.copyfile(libos, directory / GRAMINE_LIBOS)
    copied = observe_gramine(
        libos=directory / GRAMINE_LIBOS, runtime=target_runtime, libpal_sgx=libpal_sgx, version=pinned.version
    )
    if copied != pinned:  # a copy that measures differently (a symlink out of the runtime dir)
        raise ReleaseInputError(f"the copy of Gramine's files in {directory} does not measure as the original")
    return observed

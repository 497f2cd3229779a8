"""Start a release: its release.toml from the source tree's pins, the enclave settings and the job.

    written = write_release_inputs(Path("release"), job=Path("job.toml"), pins=Path(".../release-pins.toml"),
                                   requirements=Path("requirements-enclave.txt"), build_requirements=..., params=...)

The pins file (packaging/enclave/release-pins.toml) holds what every release of a source tree shares: the Debian
packages of the runtime and the Gramine files. A maintainer refreshes it deliberately (`enclavefl enclave assemble
--print-pins`, `enclavefl enclave add-gramine --print-pins`); a release copies it, with the wheels' pins, the
enclave's settings and the job's sha256, into one file that both build procedures read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from enclavefl.errors import ReleaseInputError
from enclavefl.tee.gramine_pkg.manifest import ManifestParams
from enclavefl.tee.gramine_pkg.release_inputs import (
    RELEASE_FILE,
    DebianInputs,
    DebianPackage,
    GramineInputs,
    ReleaseInputs,
    dump_release_inputs,
    read_requirements,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WrittenRelease:
    path: Path
    inputs: ReleaseInputs


def load_pins(path: Path) -> tuple[DebianInputs, GramineInputs]:
    """The [debian] and [gramine] tables of a pins file."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        debian, gramine = doc["debian"], doc["gramine"]
        return (
            DebianInputs(
                suite=str(debian["suite"]),
                sources=tuple(str(s) for s in debian["sources"]),
                base_image=str(debian.get("base_image", "")),
                packages=tuple(sorted(DebianPackage(**p) for p in debian["packages"])),
            ),
            GramineInputs(**gramine),
        )
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseInputError(f"{path}: cannot read the release pins: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise ReleaseInputError(f"{path}: missing or unknown key: {exc}") from exc


def write_release_inputs(
    release_dir: Path,
    *,
    job: Path,
    pins: Path,
    requirements: Path,
    build_requirements: Path,
    params: ManifestParams,
    force: bool = False,
) -> WrittenRelease:
    """Write RELEASE_DIR/release.toml and RELEASE_DIR/job/job.toml; refuses to overwrite unless `force`."""
    target, job_target = release_dir / RELEASE_FILE, release_dir / "job" / "job.toml"
    existing = [str(p) for p in (target, job_target) if p.exists()]
    if existing and not force:
        raise ReleaseInputError(f"refusing to overwrite {existing}; pass --force to replace them")
    try:
        job_bytes = job.read_bytes()
    except OSError as exc:
        raise ReleaseInputError(f"--job {job}: {exc}") from exc
    debian, gramine = load_pins(pins)
    inputs = ReleaseInputs(
        enclavefl_version=_version(),
        debian=debian,
        requirements=read_requirements(requirements),
        build_requirements=read_requirements(build_requirements),
        gramine=gramine,
        enclave=params,
        job_sha256=hashlib.sha256(job_bytes).hexdigest(),
    )
    job_target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(job, job_target)
    target.write_text(dump_release_inputs(inputs), encoding="utf-8")
    return WrittenRelease(path=target, inputs=inputs)


def _version() -> str:
    try:
        return importlib.metadata.version("enclavefl")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"

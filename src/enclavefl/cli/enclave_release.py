"""`enclavefl enclave init / assemble / add-gramine`: record a release's inputs, lay it out, add Gramine's files.

The steps of packaging/enclave/build-release.sh and of the Containerfile, which run the last two inside the pinned
root filesystem; docs/gramine.md, "Release", shows the whole procedure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import EnclaveFLError, EnclaveTooSmall, ManifestHardeningError, SigstructSignatureError

DEFAULT_PINS = Path("packaging/enclave/release-pins.toml")
DEFAULT_REQUIREMENTS = Path("requirements-enclave.txt")
DEFAULT_BUILD_REQUIREMENTS = Path("packaging/enclave/requirements-build.txt")


def fail(exc: EnclaveFLError) -> typer.Exit:
    """Print the error in one line and give the exit status: REFUSED when a check said no, CONFIG otherwise."""
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    refused = isinstance(exc, ManifestHardeningError | SigstructSignatureError)
    return typer.Exit(ExitCode.REFUSED if refused else ExitCode.CONFIG)


def init(
    release_dir: Annotated[Path, typer.Argument(help="The release directory to create (release.toml, job/).")],
    job: Annotated[Path, typer.Option(help="The job spec (job.toml) the enclave will run; measured.")],
    enclave_size: Annotated[
        str,
        typer.Option(
            help="Enclave memory, a power of two ('2G'), or 'auto': derived from the job's model and "
            "strategy (enclavefl.aggregation.memory)."
        ),
    ] = "auto",
    rpc_workers: Annotated[
        int,
        typer.Option(min=1, max=1024, help="The node's RPC work threads in the enclave (calls that wait hold none)."),
    ] = 4,  # tee/gramine_pkg/threads.py DEFAULT_RPC_WORKERS (not imported: the CLI starts fast)
    max_threads: Annotated[
        int | None, typer.Option(help="SGX thread slots (default: derived from the pools with 25% headroom).")
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port the node listens on inside the enclave.")] = 7443,
    isv_prod_id: Annotated[int, typer.Option(help="ISV product id in the signature; data owners pin it.")] = 0,
    isv_svn: Annotated[int, typer.Option(help="ISV security version; bump it for security fixes.")] = 0,
    log_level: Annotated[str, typer.Option(help="Gramine log level: 'error' or 'none' (others leak).")] = "error",
    pins: Annotated[Path, typer.Option(help="Pinned Debian packages and Gramine files.")] = DEFAULT_PINS,
    requirements: Annotated[Path, typer.Option(help="The enclave venv's hash-pinned wheels.")] = DEFAULT_REQUIREMENTS,
    build_requirements: Annotated[
        Path, typer.Option(help="Hash-pinned setuptools and wheel that build enclavefl's wheel.")
    ] = DEFAULT_BUILD_REQUIREMENTS,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing release.toml and job.")] = False,
) -> None:
    """Record a release's inputs: RELEASE_DIR/release.toml (pins, wheels, settings, job digest) and the job.

    Run it in the enclavefl source tree of the release (the defaults of --pins and the requirement files are
    relative to it). The enclave size is derived from the job's model unless given; the node refuses at start
    a job its enclave cannot hold. Then build the release from these inputs alone, either way:
    packaging/enclave/build-release.sh RELEASE_DIR (mmdebstrap, on the host) or the Containerfile.
    """
    from enclavefl.core.jobfile import load_job
    from enclavefl.enclave.strategies import job_enclave_bytes
    from enclavefl.tee.gramine_pkg.manifest import ManifestParams, enclave_size_for
    from enclavefl.tee.gramine_pkg.release_setup import write_release_inputs

    try:
        needed = job_enclave_bytes(load_job(job), rpc_workers=rpc_workers)
        size = enclave_size_for(needed) if enclave_size == "auto" else enclave_size
        params = ManifestParams(
            enclave_size=size,
            rpc_workers=rpc_workers,
            max_threads=max_threads,
            port=port,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            log_level=log_level,
        )
        if needed > params.enclave_size_bytes:
            raise EnclaveTooSmall(
                f"--enclave-size {size} ({params.enclave_size_bytes / 2**20:.0f} MiB) cannot hold this job: it needs "
                f"{needed / 2**20:.0f} MiB; give a larger power of two or 'auto'"
            )
        written = write_release_inputs(
            release_dir,
            job=job,
            pins=pins,
            requirements=requirements,
            build_requirements=build_requirements,
            params=params,
            force=force,
        )
    except EnclaveFLError as exc:
        raise fail(exc) from exc
    typer.echo(f"wrote {written.path}: enclave_size {size} (the job needs {needed / 2**20:.0f} MiB)")
    typer.echo(f"next: packaging/enclave/build-release.sh {release_dir}   (or the Containerfile; docs/gramine.md)")


def assemble(
    release_dir: Annotated[Path, typer.Argument(help="A release directory holding release.toml and job/job.toml.")],
    root: Annotated[Path, typer.Option(help="The pinned root filesystem to take the runtime from.")] = Path("/"),
    venv: Annotated[str, typer.Option(help="The enclave venv inside ROOT.")] = "/opt/enclavefl/venv",
    print_pins: Annotated[
        bool,
        typer.Option(
            "--print-pins",
            help="Only print the Debian packages the runtime would come from, as pins "
            "(to record them in packaging/enclave/release-pins.toml); write nothing.",
        ),
    ] = False,
) -> None:
    """Lay out the release from the root it is built in: the job's canonical form (job/job.json, the one the
    enclave loads), stdlib, native libraries, venv, manifest, run.sh.

    Run inside the pinned root (the build scripts do): every file comes from ROOT, whose Debian packages must
    be the pinned versions (checked by sha256), never from the host that started the build.
    """
    from enclavefl.tee.gramine_pkg.assemble import assemble_release, observe_runtime_packages

    try:
        if print_pins:
            for p in observe_runtime_packages(root=root, venv=venv):
                typer.echo(f'  {{ name = "{p.name}", version = "{p.version}", sha256 = "{p.sha256}" }},')
            return
        release = assemble_release(release_dir, root=root, venv=venv)
    except EnclaveFLError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"assembled {release.directory}: {release.stdlib_files} stdlib files, {len(release.libraries)} native "
        f"libraries ({', '.join(release.libraries)}), {len(release.trusted)} trusted entries, from "
        f"{len(release.packages)} pinned Debian packages"
    )


def add_gramine(
    release_dir: Annotated[Path, typer.Argument(help="The assembled release directory.")],
    libos: Annotated[Path, typer.Option(help="Gramine's LibOS, libsysdb.so (gramine-manifest's gramine.libos).")],
    runtime: Annotated[Path, typer.Option(help="Gramine's glibc runtime directory (gramine.runtimedir()).")],
    libpal_sgx: Annotated[Path, typer.Option(help="Gramine's SGX PAL, the libpal.so gramine-sgx-sign measures.")],
    print_pins: Annotated[
        bool, typer.Option("--print-pins", help="Only print this Gramine's [gramine] pins (to record a new one).")
    ] = False,
    version: Annotated[str, typer.Option(help="With --print-pins: the version to record.")] = "1.9",
) -> None:
    """Copy Gramine's LibOS and runtime into the release after checking them (and the PAL) against release.toml."""
    from enclavefl.tee.gramine_pkg.gramine_files import add_gramine_files, observe_gramine

    try:
        if print_pins:
            seen = observe_gramine(libos=libos, runtime=runtime, libpal_sgx=libpal_sgx, version=version)
            typer.echo(
                f'[gramine]\nversion = "{seen.version}"\nlibpal_sgx_sha256 = "{seen.libpal_sgx_sha256}"\n'
                f'libsysdb_sha256 = "{seen.libsysdb_sha256}"\nruntime_digest = "{seen.runtime_digest}"'
            )
            return
        observed = add_gramine_files(release_dir, libos=libos, runtime=runtime, libpal_sgx=libpal_sgx)
    except EnclaveFLError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"added Gramine {observed.version} (LibOS {observed.libsysdb_sha256[:16]}..., PAL "
        f"{observed.libpal_sgx_sha256[:16]}..., runtime {observed.runtime_digest[:16]}...)"
    )

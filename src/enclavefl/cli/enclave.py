"""`enclavefl enclave`: package the aggregator for Gramine-SGX and read its measurements back."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import ConfigError, EnclaveFLError, ManifestHardeningError, SigstructSignatureError
from enclavefl.tee.gramine_pkg import (
    AGGREGATOR_DISTRIBUTIONS,
    ManifestParams,
    Sigstruct,
    check_rendered_manifest,
    plan_site_packages,
    verify_sigstruct_signature,
    write_enclave_project,
)
from enclavefl.tee.gramine_pkg.threads import DEFAULT_RPC_WORKERS, DEFAULT_TOKIO_WORKERS

app = typer.Typer(
    help=(
        "Package the aggregator as a Gramine-SGX enclave and read its measurements.\n\n"
        "On the SGX host: `enclavefl enclave init DIR`, copy the job spec to DIR/job/job.toml, run "
        "DIR/build.sh (renders, checks and signs the manifest, then runs `measure`), send DIR/policy.toml "
        "to the data owners, start the node with DIR/run.sh and the host agent (`enclavefl node agent`) "
        "beside it. Data owners rebuild the release (packaging/enclave/rebuild.sh) and compare MRENCLAVE "
        "with `measure`. Details: docs/gramine.md."
    ),
    no_args_is_help=True,
)


def _fail(exc: EnclaveFLError) -> typer.Exit:
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    refused = isinstance(exc, ManifestHardeningError | SigstructSignatureError)  # a check said no, not a typo
    return typer.Exit(ExitCode.REFUSED if refused else ExitCode.CONFIG)


@app.command(epilog=exit_status_help())
def init(
    directory: Annotated[Path, typer.Argument(help="Build directory to create (template, build.sh, run.sh).")],
    enclave_size: Annotated[
        str, typer.Option(help="Enclave memory, a power of two ('1G', '4G'). Needs ~2x model + 64 MiB + runtime.")
    ] = "1G",
    rpc_workers: Annotated[
        int, typer.Option(min=1, max=1024, help="gRPC server worker threads (concurrent calls) in the enclave.")
    ] = DEFAULT_RPC_WORKERS,
    tokio_workers: Annotated[
        int, typer.Option(min=1, max=64, help="TOKIO_WORKER_THREADS for dcap-qvl's runtime in the enclave.")
    ] = DEFAULT_TOKIO_WORKERS,
    max_threads: Annotated[
        int | None,
        typer.Option(help="SGX thread slots (default: derived from the two pool sizes with 25% headroom)."),
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port the node listens on inside the enclave.")] = 7443,
    collateral_dir: Annotated[
        Path | None,
        typer.Option(help="Host directory the node agent keeps collateral.json in (default: DIR/collateral)."),
    ] = None,
    isv_prod_id: Annotated[int, typer.Option(help="ISV product id in the signature; data owners pin it.")] = 0,
    isv_svn: Annotated[
        int, typer.Option(help="ISV security version; bump it for security fixes (policies set a minimum).")
    ] = 0,
    venv_python: Annotated[
        Path | None,
        typer.Option(help="The enclave venv's interpreter (default: this one). Only aggregator deps inside."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Host directory for the encrypted node state (default: DIR/state).")
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="RSA-3072 enclave signing key (default: Gramine's ~/.config/gramine/enclave-key.pem)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Gramine log level: 'error' or 'none' (others leak).")] = "error",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing build directory's files.")] = False,
) -> None:
    """Write an enclave build directory for the aggregator.

    Every host path the manifest names (the venv, the job, state and collateral directories) is measured: for
    a build others can reproduce, use fixed paths (--state-dir, --collateral-dir, and DIR itself), as
    packaging/enclave/Containerfile does. sgx.max_threads is derived from --rpc-workers and --tokio-workers.
    """
    directory = directory.absolute()
    python = venv_python if venv_python is not None else Path(sys.executable)
    try:
        params = ManifestParams(
            # absolute() keeps the venv's own bin/python path: resolving it would leave the venv
            venv_python=str(python.absolute()),
            state_dir=str((state_dir or directory / "state").absolute()),
            job_dir=str(directory / "job"),
            collateral_dir=str((collateral_dir or directory / "collateral").absolute()),
            enclave_size=enclave_size,
            rpc_workers=rpc_workers,
            tokio_workers=tokio_workers,
            max_threads=max_threads,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            port=port,
            log_level=log_level,
            signing_key=None if signing_key is None else str(signing_key.absolute()),
        )
        project = write_enclave_project(directory, params, force=force)
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    typer.echo(f"wrote {project.directory}")
    typer.echo(f"next: put the job spec at {project.job_dir / 'job.toml'}, then run {project.build_script}")


@app.command(epilog=exit_status_help(ExitCode.REFUSED))
def measure(
    sigfile: Annotated[Path, typer.Argument(help="The enclave signature written by gramine-sgx-sign (APP.sig).")],
    policy_out: Annotated[
        Path | None,
        typer.Option(help="Write a data owner's policy TOML pinning MRENCLAVE, MRSIGNER, product id, min SVN."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the measurements as JSON.")] = False,
) -> None:
    """Verify APP.sig's signature and print MRENCLAVE, MRSIGNER, ISV product id, SVN and debug.

    For a data owner this is "rebuild and compare": rebuild the release with its build recipe
    (docs/gramine.md), run `measure` on your aggregator.sig and allow the MRENCLAVE only if it equals the
    operator's.
    """
    from enclavefl.tee.verify.policy import AttestationPolicy

    try:
        sig = verify_sigstruct_signature(_read_bytes(sigfile))
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    if json_output:
        typer.echo(json.dumps(_measurements(sig), indent=2))
    else:
        for key, value in _measurements(sig).items():
            typer.echo(f"{key:<12} {value}")
    if sig.debug:
        typer.echo("WARNING: DEBUG enclave: the host can read its memory. Never send it data.", err=True)
    if policy_out is not None:
        policy = (
            AttestationPolicy.strict()
            .allow_mrenclave(sig.mrenclave)
            .allow_mrsigner(sig.mrsigner)
            .require_isv_prod_id(sig.isv_prod_id)
            .min_isv_svn(sig.isv_svn)
        )
        header = (
            f"# enclavefl attestation policy for {sigfile.name}, written by `enclavefl enclave measure` of enclavefl "
            f"{_enclavefl_version()}.\n# Built by the release's packaging/enclave/Containerfile (docs/gramine.md, "
            '"Reproducible build"): rebuild with packaging/enclave/rebuild.sh and the same job.toml, and allow\n'
            "# this MRENCLAVE only if yours is equal.\n"
        )
        policy_out.write_text(header + policy.to_toml(), encoding="utf-8")
        typer.echo(f"wrote {policy_out}", err=True)


@app.command("check-manifest", epilog=exit_status_help(ExitCode.REFUSED))
def check_manifest(
    manifest: Annotated[Path, typer.Argument(help="A manifest rendered by gramine-manifest (APP.manifest).")],
) -> None:
    """Refuse a rendered manifest that weakens a guarantee (debug, insecure__ keys, host env, ...)."""
    try:
        document = tomllib.loads(manifest.read_text(encoding="utf-8"))
        check_rendered_manifest(document)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(ConfigError(f"{manifest}: not TOML: {exc}")) from exc
    except OSError as exc:
        raise _fail(ConfigError(f"{manifest}: {exc}")) from exc
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{manifest}: ok (production enclave, DCAP attestation, no insecure keys)")


@app.command("trusted-paths", epilog=exit_status_help())
def trusted_paths() -> None:
    """Print the site-packages paths the enclave trusts, ':'-joined (build.sh passes them on).

    Run with the enclave venv: each distribution in AGGREGATOR_DISTRIBUTIONS is looked up in this
    interpreter's site-packages and its pip RECORD names the directories and files to trust.
    """
    try:
        plan = plan_site_packages(AGGREGATOR_DISTRIBUTIONS)
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    if plan.untrusted:
        typer.echo(
            "warning: installed but not trusted (importing them inside the enclave raises PermissionError, "
            "not ImportError; keep the enclave venv minimal): " + ", ".join(plan.untrusted),
            err=True,
        )
    typer.echo(":".join(plan.trusted))


@app.command(epilog=exit_status_help())
def tcb(
    pinned: Annotated[
        bool, typer.Option("--pinned", help="Print the TOML form that tests/enclave/pinned_tcb.toml pins.")
    ] = False,
) -> None:
    """Print the enclave's TCB: its enclavefl modules (with lines) and distributions (with versions and sizes).

    Two closures: a plain job's (what its enclave loads), then the release's, with every optional part a job
    may load (masked mode): what sgx.trusted_files measures and every data owner trusts in full.

    Run it in the enclave venv on the build host. Diff it between releases to review what every data owner is
    asked to trust in addition.
    """
    from enclavefl.tee.gramine_pkg.tcb import measure_tcb, pinned_form, render_tcb

    try:
        plain, release = measure_tcb(parts=()), measure_tcb()
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    if pinned:
        typer.echo(pinned_form(plain, release), nl=False)
        return
    typer.echo(render_tcb(plain) + "\n\n" + render_tcb(release))


@app.command("file-set", epilog=exit_status_help())
def file_set(
    manifest: Annotated[Path, typer.Argument(help="aggregator.manifest (rendered) or aggregator.manifest.sgx.")],
    root: Annotated[
        Path | None, typer.Option(help="Measure a tree staged here as if it were at / (gramine-sgx-sign --chroot).")
    ] = None,
) -> None:
    """Print every measured file as "sha256  uri" and, last, the digest of the whole set.

    The list is what gramine-sgx-sign hashes into the signed manifest (directories expanded as Gramine does);
    two builds with the same digest and the same manifest give the same MRENCLAVE. build.sh keeps it as
    aggregator.files: diff two of them to see why two builds differ.
    """
    from enclavefl.tee.gramine_pkg.fileset import expand_trusted_files, file_set_digest

    try:
        document = tomllib.loads(manifest.read_text(encoding="utf-8"))
        files = expand_trusted_files(document.get("sgx", {}).get("trusted_files", []), root=root)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _fail(ConfigError(f"{manifest}: {exc}")) from exc
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    for item in files:
        typer.echo(f"{item.sha256}  {item.uri}")
    typer.echo(f"file-set digest {file_set_digest(files)} ({len(files)} files)")


@app.command("native-libs", epilog=exit_status_help())
def native_libs(
    library_dir: Annotated[
        list[Path], typer.Option(help="A library directory the manifest mounts (repeat: arch dir, /usr arch dir).")
    ],
) -> None:
    """Print the host libraries the enclave must trust, ':'-joined (build.sh passes them on).

    Run with the enclave venv: reads the ELF dynamic section (DT_NEEDED, RUNPATH) of this interpreter, of the
    standard library's extension modules and of every extension module in the trusted site-packages, and
    resolves them transitively. Refuses an interpreter that links a library outside LIBRARY_DIRs (pyenv's
    shared libpython): what the binary links is checked, not sysconfig's Py_ENABLE_SHARED.
    """
    import os
    import sysconfig

    from enclavefl.tee.gramine_pkg.native_libs import elf_files_under, plan_native_libraries

    try:
        plan = plan_site_packages(AGGREGATOR_DISTRIBUTIONS)
        extensions = elf_files_under([sysconfig.get_path("stdlib"), *plan.trusted])
        libraries = plan_native_libraries(
            interpreter=os.path.realpath(sys.executable),
            extensions=extensions,
            library_dirs=[str(d) for d in library_dir],
            bundled_dirs=[plan.site_packages],
        )
    except EnclaveFLError as exc:
        raise _fail(exc) from exc
    typer.echo(":".join(libraries))


def _enclavefl_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("enclavefl")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _measurements(sig: Sigstruct) -> dict[str, str | int | bool]:
    return {
        "mrenclave": sig.mrenclave.hex(),
        "mrsigner": sig.mrsigner.hex(),
        "isv_prod_id": sig.isv_prod_id,
        "isv_svn": sig.isv_svn,
        "debug": sig.debug,
        "date": sig.date,
    }


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc}") from exc

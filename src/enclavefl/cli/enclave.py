"""`enclavefl enclave`: package the aggregator for Gramine-SGX and read its measurements back."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from enclavefl.cli.enclave_release import add_gramine, assemble, fail, init
from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import ConfigError, EnclaveFLError
from enclavefl.tee.gramine_pkg import Sigstruct, check_rendered_manifest, verify_sigstruct_signature
from enclavefl.tee.verify.policy import DEFAULT_MAX_COLLATERAL_AGE_SECONDS

DEFAULT_MAX_COLLATERAL_AGE_DAYS = DEFAULT_MAX_COLLATERAL_AGE_SECONDS / 86400  # the host agent refreshes daily

app = typer.Typer(
    help=(
        "Package the aggregator as a Gramine-SGX enclave and read its measurements.\n\n"
        "A release is a self-contained directory: `enclavefl enclave init R --job job.toml` records its inputs "
        "(R/release.toml: pinned Debian packages, wheels, Gramine, settings, the job), "
        "packaging/enclave/build-release.sh R (or the Containerfile) builds it in a pinned Debian root "
        "(`assemble`, `add-gramine`), signs it and writes R/policy.toml; R/run.sh starts the node beside the "
        "host agent (`enclavefl node agent`). Data owners rebuild it from R/release.toml and R/job/job.toml "
        "(packaging/enclave/rebuild.sh R) and compare MRENCLAVE. Details: docs/gramine.md."
    ),
    no_args_is_help=True,
)


for _command, _name in ((init, "init"), (assemble, "assemble"), (add_gramine, "add-gramine")):
    app.command(_name, epilog=exit_status_help())(_command)


@app.command(epilog=exit_status_help(ExitCode.REFUSED))
def measure(
    sigfile: Annotated[Path, typer.Argument(help="The enclave signature written by gramine-sgx-sign (APP.sig).")],
    policy_out: Annotated[
        Path | None,
        typer.Option(help="Write a data owner's policy TOML pinning MRENCLAVE, MRSIGNER, product id, min SVN."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the measurements as JSON.")] = False,
    accept_advisory: Annotated[
        list[str] | None,
        typer.Option(
            "--accept-advisory",
            help="With --policy-out: accept platforms affected by this Intel advisory (INTEL-SA-NNNNN; repeat for "
            "each). Such platforms report SWHardeningNeeded: the policy accepts that status only with exactly the "
            "named advisories; a platform with any other advisory is still refused.",
        ),
    ] = None,
    max_collateral_age_days: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="With --policy-out: refuse collateral issued longer ago than this, even if "
            "it has not expired (a host can keep serving old TCB info for ~30 days).",
        ),
    ] = DEFAULT_MAX_COLLATERAL_AGE_DAYS,
) -> None:
    """Verify APP.sig's signature and print MRENCLAVE, MRSIGNER, ISV product id, SVN and debug.

    For a data owner this is "rebuild and compare": rebuild the release (packaging/enclave/rebuild.sh, which
    runs `measure` on both signatures) and allow the MRENCLAVE only if it equals the operator's. With
    --policy-out it writes the owners' policy for this enclave; the platform notes it records (accepted
    advisories, maximum collateral age) are the owners' to review before they use it.
    """
    from enclavefl.tee.verify.policy import AttestationPolicy, advisory_id

    try:
        sig = verify_sigstruct_signature(_read_bytes(sigfile))
    except EnclaveFLError as exc:
        raise fail(exc) from exc
    if json_output:
        typer.echo(json.dumps(_measurements(sig), indent=2))
    else:
        for key, value in _measurements(sig).items():
            typer.echo(f"{key:<12} {value}")
    if sig.debug:
        typer.echo("WARNING: DEBUG enclave: the host can read its memory. Never send it data.", err=True)
    if policy_out is not None:
        try:
            advisories = [advisory_id(a) for a in accept_advisory or []]
            policy = (
                AttestationPolicy.strict()
                .allow_mrenclave(sig.mrenclave)
                .allow_mrsigner(sig.mrsigner)
                .require_isv_prod_id(sig.isv_prod_id)
                .min_isv_svn(sig.isv_svn)
                .max_collateral_age(round(max_collateral_age_days * 86400))
            )
            if advisories:
                policy = policy.accept_advisories(advisories).allow_sw_hardening_needed()
        except EnclaveFLError as exc:
            raise fail(exc) from exc
        header = (
            f"# enclavefl attestation policy for {sigfile.name}, written by `enclavefl enclave measure` of enclavefl "
            f"{_enclavefl_version()}.\n# Rebuild the release from its release.toml and job (packaging/enclave/"
            "rebuild.sh, docs/gramine.md) and allow this MRENCLAVE only if yours is equal.\n"
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
        raise fail(ConfigError(f"{manifest}: not TOML: {exc}")) from exc
    except OSError as exc:
        raise fail(ConfigError(f"{manifest}: {exc}")) from exc
    except EnclaveFLError as exc:
        raise fail(exc) from exc
    typer.echo(f"{manifest}: ok (production enclave, DCAP attestation, no insecure keys)")


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
        raise fail(exc) from exc
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
    two builds with the same digest and the same manifest give the same MRENCLAVE. Run it in the release
    directory (its URIs are relative to it); a release keeps it as aggregator.files: diff two of them to see
    why two builds differ.
    """
    from enclavefl.tee.gramine_pkg.fileset import expand_trusted_files, file_set_digest

    try:
        document = tomllib.loads(manifest.read_text(encoding="utf-8"))
        files = expand_trusted_files(document.get("sgx", {}).get("trusted_files", []), root=root)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise fail(ConfigError(f"{manifest}: {exc}")) from exc
    except EnclaveFLError as exc:
        raise fail(exc) from exc
    for item in files:
        typer.echo(f"{item.sha256}  {item.uri}")
    typer.echo(f"file-set digest {file_set_digest(files)} ({len(files)} files)")


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

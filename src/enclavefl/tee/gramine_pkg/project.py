"""Write an enclave build directory: manifest template, build.sh, run.sh, README.txt."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg.manifest import (
    AGGREGATOR_DISTRIBUTIONS,
    JOB_FILE_IN_ENCLAVE,
    TEMPLATE_NAME,
    ManifestParams,
    aggregator_manifest_template,
    fill_markers,
)

BUILD_SCRIPT: Final = "build.sh"
RUN_SCRIPT: Final = "run.sh"
README: Final = "README.txt"
# Gramine's default key location; left as a shell expression so it expands on the build host.
_DEFAULT_SIGNING_KEY: Final = '"${XDG_CONFIG_HOME:-$HOME/.config}/gramine/enclave-key.pem"'

_README_TEXT: Final = """enclavefl aggregator enclave (Gramine, SGX)
============================================

1. Put the job spec at {job_dir}/job.toml (the enclave reads it as {job_in_enclave}).
   Everything in that directory is measured into MRENCLAVE.
2. ./build.sh      renders aggregator.manifest, checks it, signs it (aggregator.sig,
                   aggregator.manifest.sgx) and writes policy.toml with MRENCLAVE/MRSIGNER.
3. Send policy.toml to every data owner (out of band); they verify the node against it.
4. Start the node under the host agent, which keeps {collateral_dir}/collateral.json fresh
   from your PCCS, restarts the node after a crash and writes its log (docs/gramine.md, "The host agent"):
       enclavefl node agent --pccs-url https://PCCS:8081/ --collateral-dir {collateral_dir} \\
           --run-node ./run.sh --log node.log
   run.sh starts the node with gramine-sgx; its state is encrypted in {state_dir}. The enclave
   itself makes no outbound connection.

Trusted site-packages distributions: {distributions}.
Settings live at the top of build.sh; rebuilding changes MRENCLAVE. See docs/gramine.md.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnclaveProject:
    """Paths of a written enclave build directory."""

    directory: Path
    manifest_template: Path
    build_script: Path
    run_script: Path
    readme: Path
    job_dir: Path
    state_dir: Path


def write_enclave_project(directory: Path, params: ManifestParams, *, force: bool = False) -> EnclaveProject:
    """Write the build directory for `params`; refuses to overwrite files unless `force`."""
    project = EnclaveProject(
        directory=directory,
        manifest_template=directory / TEMPLATE_NAME,
        build_script=directory / BUILD_SCRIPT,
        run_script=directory / RUN_SCRIPT,
        readme=directory / README,
        job_dir=Path(params.job_dir),
        state_dir=Path(params.state_dir),
    )
    outputs = (project.manifest_template, project.build_script, project.run_script, project.readme)
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not force:
        raise ConfigError(f"refusing to overwrite {existing}; pass force=True (--force) to replace them")
    directory.mkdir(parents=True, exist_ok=True)
    project.job_dir.mkdir(parents=True, exist_ok=True)

    project.manifest_template.write_text(aggregator_manifest_template(), encoding="utf-8")
    project.build_script.write_text(render_build_script(params), encoding="utf-8")
    project.run_script.write_text(render_run_script(params), encoding="utf-8")
    project.readme.write_text(
        _README_TEXT.format(
            job_dir=params.job_dir,
            job_in_enclave=JOB_FILE_IN_ENCLAVE,
            state_dir=params.state_dir,
            collateral_dir=params.collateral_dir,
            distributions=", ".join(AGGREGATOR_DISTRIBUTIONS),
        ),
        encoding="utf-8",
    )
    for script in (project.build_script, project.run_script):
        script.chmod(0o755)
    return project


def render_build_script(params: ManifestParams) -> str:
    """build.sh with `params` as shell-quoted settings at the top."""
    signing_key = _DEFAULT_SIGNING_KEY if params.signing_key is None else shlex.quote(params.signing_key)
    values = {
        "VENV_PYTHON": shlex.quote(params.venv_python),
        "ENCLAVE_SIZE": shlex.quote(params.enclave_size),
        "MAX_THREADS": str(params.thread_slots),
        "RPC_WORKERS": str(params.rpc_workers),
        "TOKIO_WORKERS": str(params.tokio_workers),
        "ISV_PROD_ID": str(params.isv_prod_id),
        "ISV_SVN": str(params.isv_svn),
        "PORT": str(params.port),
        "LOG_LEVEL": shlex.quote(params.log_level),
        "STATE_DIR": shlex.quote(params.state_dir),
        "JOB_DIR": shlex.quote(params.job_dir),
        "COLLATERAL_DIR": shlex.quote(params.collateral_dir),
        "SIGNING_KEY": signing_key,
    }
    return fill_markers(_read_data(f"{BUILD_SCRIPT}.template"), values)


def render_run_script(params: ManifestParams) -> str:
    """run.sh: `gramine-sgx aggregator` after making sure the state directory exists."""
    return fill_markers(_read_data(f"{RUN_SCRIPT}.template"), {"STATE_DIR": shlex.quote(params.state_dir)})


def _read_data(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")

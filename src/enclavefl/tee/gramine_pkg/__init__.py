"""Gramine packaging of the aggregator: a self-contained release, its manifest, SIGSTRUCT reading.

A release directory carries its own runtime from a pinned Debian root (`assemble_release`), Gramine's measured
files (`add_gramine_files`) and a manifest that names them by relative URIs; `check_rendered_manifest` refuses
weakened manifests and `verify_sigstruct_signature` reads MRENCLAVE/MRSIGNER back from the signed `.sig`, so data
owners get the exact values for their policy. docs/gramine.md, "Release", shows the procedure.
"""

from enclavefl.tee.gramine_pkg.manifest import (
    AGGREGATOR_DISTRIBUTIONS,
    AGGREGATOR_ENTRY_MODULE,
    JOB_FILE_IN_ENCLAVE,
    STATE_MOUNT,
    ManifestParams,
    aggregator_args,
    parse_enclave_size,
    render_release_manifest,
)
from enclavefl.tee.gramine_pkg.manifest_check import check_rendered_manifest
from enclavefl.tee.gramine_pkg.sigstruct import (
    Sigstruct,
    build_sigstruct,
    mrsigner_from_public_key,
    parse_sigstruct,
    verify_sigstruct_signature,
)
from enclavefl.tee.gramine_pkg.site_packages import SitePackagesPlan, plan_site_packages

__all__ = [
    "AGGREGATOR_DISTRIBUTIONS",
    "AGGREGATOR_ENTRY_MODULE",
    "JOB_FILE_IN_ENCLAVE",
    "STATE_MOUNT",
    "ManifestParams",
    "Sigstruct",
    "SitePackagesPlan",
    "aggregator_args",
    "build_sigstruct",
    "check_rendered_manifest",
    "mrsigner_from_public_key",
    "parse_enclave_size",
    "parse_sigstruct",
    "plan_site_packages",
    "render_release_manifest",
    "verify_sigstruct_signature",
]

"""Gramine packaging of the aggregator: manifest template, build/run scripts, SIGSTRUCT reading.

The template is rendered and signed on the SGX build host by Gramine's own tools; this package
writes the build directory (`write_enclave_project`), decides which files the enclave may load
(`AGGREGATOR_DISTRIBUTIONS`), refuses weakened manifests (`check_rendered_manifest`) and reads
MRENCLAVE/MRSIGNER back from the signed `.sig` (`verify_sigstruct_signature`) so data owners get
the exact values for their policy.
"""

from enclavefl.tee.gramine_pkg.manifest import (
    AGGREGATOR_ARGS,
    AGGREGATOR_DISTRIBUTIONS,
    AGGREGATOR_ENTRY_MODULE,
    JOB_FILE_IN_ENCLAVE,
    STATE_MOUNT,
    ManifestParams,
    aggregator_manifest_template,
    check_rendered_manifest,
    parse_enclave_size,
)
from enclavefl.tee.gramine_pkg.project import EnclaveProject, write_enclave_project
from enclavefl.tee.gramine_pkg.sigstruct import (
    Sigstruct,
    build_sigstruct,
    mrsigner_from_public_key,
    parse_sigstruct,
    verify_sigstruct_signature,
)
from enclavefl.tee.gramine_pkg.site_packages import SitePackagesPlan, plan_site_packages

__all__ = [
    "AGGREGATOR_ARGS",
    "AGGREGATOR_DISTRIBUTIONS",
    "AGGREGATOR_ENTRY_MODULE",
    "JOB_FILE_IN_ENCLAVE",
    "STATE_MOUNT",
    "EnclaveProject",
    "ManifestParams",
    "Sigstruct",
    "SitePackagesPlan",
    "aggregator_manifest_template",
    "build_sigstruct",
    "check_rendered_manifest",
    "mrsigner_from_public_key",
    "parse_enclave_size",
    "parse_sigstruct",
    "plan_site_packages",
    "verify_sigstruct_signature",
    "write_enclave_project",
]

"""The aggregator's Gramine manifest: parameters, the enclave's file allow-list, hardening checks.

We never render the Jinja template ourselves: its helpers (`gramine.runtimedir()`) only exist
on a host with Gramine, so `gramine-manifest` renders it there (see `project.py` for build.sh).
This module owns what must be identical everywhere: the command line, the mount points, which
pip distributions the enclave may load, and the checks a rendered manifest must pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from enclavefl.errors import ConfigError, ManifestHardeningError
from enclavefl.tee.gramine_pkg.threads import DEFAULT_RPC_WORKERS, DEFAULT_TOKIO_WORKERS, required_max_threads
from enclavefl.tee.inside.seal import STATE_SEALING_KEY

TEMPLATE_NAME: Final = "aggregator.manifest.template"

# Where the enclave sees the job, its sealed state and the collateral the host agent keeps fresh (host paths
# are build parameters).
JOB_MOUNT: Final = "/enclavefl/job"
STATE_MOUNT: Final = "/enclavefl/state"
COLLATERAL_MOUNT: Final = "/enclavefl/collateral"
COLLATERAL_FILE_NAME: Final = "collateral.json"  # what `enclavefl node agent` writes into the collateral dir
JOB_FILE_IN_ENCLAVE: Final = f"{JOB_MOUNT}/job.toml"
COLLATERAL_FILE_IN_ENCLAVE: Final = f"{COLLATERAL_MOUNT}/{COLLATERAL_FILE_NAME}"

# The aggregator's entry module is written by the network engineer; change it here only.
AGGREGATOR_ENTRY_MODULE: Final = "enclavefl.enclave.main"
# Everything after the interpreter; `{{ port }}` and `{{ rpc_workers }}` are rendered by gramine-manifest.
AGGREGATOR_ARGS: Final[tuple[str, ...]] = (
    "-I",  # isolated: ignore PYTHON* variables, user site and the working directory
    "-B",  # no .pyc writes (trusted directories are read-only anyway)
    "-m",
    AGGREGATOR_ENTRY_MODULE,
    "--job",
    JOB_FILE_IN_ENCLAVE,
    "--state",
    STATE_MOUNT,
    "--listen",
    "0.0.0.0:{{ port }}",
    # The enclave makes no outbound connection: the host agent (`enclavefl node agent`) fetches the collateral
    # from the PCCS and writes it here. Intel signs it and every data owner verifies it, so an untrusted
    # carrier is fine; a stale or forged file only makes attestation fail.
    "--collateral",
    COLLATERAL_FILE_IN_ENCLAVE,
    # sgx.max_threads is computed from this (threads.py): the pool must not grow with the host's cores.
    "--rpc-workers",
    "{{ rpc_workers }}",
)

# pip distributions whose files the enclave may open (sgx.trusted_files): exactly the TCB's distributions
# (`enclavefl enclave tcb`; tests/enclave/test_tcb.py keeps the two equal). Nothing else in the venv is measured
# or readable inside the enclave: no torch, matplotlib, scikit-learn, typer, rich, scipy or dp-accounting.
AGGREGATOR_DISTRIBUTIONS: Final[tuple[str, ...]] = (
    "enclavefl",
    "numpy",  # + numpy.libs (OpenBLAS, also the fold's axpy), found through its RECORD
    "cryptography",
    "cffi",  # cryptography's Rust binding imports _cffi_backend at load time
    "pycparser",  # required by cffi (not loaded at run time, but pip installs it with cffi)
    "grpcio",
    "protobuf",  # google/protobuf + google/_upb
    "typing-extensions",  # required by grpcio
)

ALLOWED_LOG_LEVELS: Final = frozenset({"none", "error"})
MIN_MAX_THREADS: Final = 4  # Gramine's IPC, async and TLS-handshake helper threads need slots
MIN_ENCLAVE_SIZE: Final = 256 * 2**20
_SIZE_UNITS: Final = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE_RE: Final = re.compile(r"^([1-9][0-9]*)([KMGT]?)$")
# Characters that would break out of a TOML basic string or inject Jinja into the template.
_UNSAFE_PATH_RE: Final = re.compile(r'["\\\x00-\x1f\x7f:]|\{\{|\{%|\{#|@')


def parse_enclave_size(text: str) -> int:
    """Bytes for a Gramine size string ("512M", "1G"); raises ConfigError if not a power of two."""
    match = _SIZE_RE.match(text.strip().upper())
    if match is None:
        raise ConfigError(f"enclave_size {text!r} is not a size like '512M' or '4G'")
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if size & (size - 1):
        raise ConfigError(f"enclave_size {text!r} = {size} bytes is not a power of two (Gramine requires it)")
    if size < MIN_ENCLAVE_SIZE:
        raise ConfigError(f"enclave_size {text!r} is below 256M; the Python runtime alone needs more")
    return size


def check_host_path(field: str, value: str) -> None:
    """Raise ConfigError unless `value` is an absolute host path safe to put into the manifest."""
    if not value.startswith("/") or value != value.strip() or len(value) > 512:
        raise ConfigError(f"{field} must be an absolute path of at most 512 bytes, got {value!r}")
    if _UNSAFE_PATH_RE.search(value):
        raise ConfigError(f'{field} must not contain quotes, backslashes, ":", "@", control or Jinja characters')


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestParams:
    """Values `gramine-manifest` substitutes into the template on the build host."""

    venv_python: str  # the venv's interpreter as the venv names it (bin/python3), not resolved
    state_dir: str  # host directory of the encrypted state mount
    job_dir: str  # host directory holding job.toml; measured into MRENCLAVE
    collateral_dir: str  # host directory the agent writes collateral.json into; read-only, not measured
    enclave_size: str = "1G"
    rpc_workers: int = DEFAULT_RPC_WORKERS  # the gRPC server's Python worker threads
    tokio_workers: int = DEFAULT_TOKIO_WORKERS  # TOKIO_WORKER_THREADS for dcap-qvl's runtime
    max_threads: int | None = None  # None: required_max_threads(rpc_workers, tokio_workers)
    isv_prod_id: int = 0
    isv_svn: int = 0
    port: int = 7443
    log_level: str = "error"
    signing_key: str | None = None  # None: Gramine's default ~/.config/gramine/enclave-key.pem

    def __post_init__(self) -> None:
        for field in ("venv_python", "state_dir", "job_dir", "collateral_dir"):
            check_host_path(field, getattr(self, field))
        if self.signing_key is not None:
            check_host_path("signing_key", self.signing_key)
        parse_enclave_size(self.enclave_size)
        if not 1 <= self.rpc_workers <= 1024 or not 1 <= self.tokio_workers <= 64:
            raise ConfigError(
                f"rpc_workers must be 1..1024 and tokio_workers 1..64, got {self.rpc_workers}, {self.tokio_workers}"
            )
        needed = required_max_threads(rpc_workers=self.rpc_workers, tokio_workers=self.tokio_workers)
        if self.max_threads is not None and not needed <= self.max_threads <= 4096:
            raise ConfigError(
                f"max_threads must be between {needed} (what {self.rpc_workers} gRPC workers and "
                f"{self.tokio_workers} tokio workers need, with headroom) and 4096, got {self.max_threads}"
            )
        for field in ("isv_prod_id", "isv_svn"):
            value = getattr(self, field)
            if not 0 <= value <= 0xFFFF:
                raise ConfigError(f"{field} is a 16-bit SIGSTRUCT field (0..65535), got {value}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port must be 1..65535, got {self.port}")
        if self.log_level not in ALLOWED_LOG_LEVELS:
            raise ConfigError(
                f"log_level must be one of {sorted(ALLOWED_LOG_LEVELS)} for an attested enclave,"
                f" got {self.log_level!r} (other levels leak enclave internals to the host)"
            )

    @property
    def thread_slots(self) -> int:
        """sgx.max_threads: the explicit value, or the one derived from the pool sizes."""
        if self.max_threads is not None:
            return self.max_threads
        return required_max_threads(rpc_workers=self.rpc_workers, tokio_workers=self.tokio_workers)


def aggregator_manifest_template() -> str:
    """The manifest template with enclavefl's constants filled in; Jinja placeholders remain."""
    raw = resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    argv = json.dumps(["{{ venv_python }}", *AGGREGATOR_ARGS])  # a JSON string array is a TOML array
    return fill_markers(
        raw,
        {
            "AGGREGATOR_ARGV": argv,
            "JOB_MOUNT": JOB_MOUNT,
            "STATE_MOUNT": STATE_MOUNT,
            "COLLATERAL_MOUNT": COLLATERAL_MOUNT,
        },
    )


def fill_markers(text: str, values: Mapping[str, str]) -> str:
    """Replace every `@NAME@`; raises ConfigError if a marker is left or a value is unused."""
    for name, value in values.items():
        marker = f"@{name}@"
        if marker not in text:
            raise ConfigError(f"template has no marker {marker}")
        text = text.replace(marker, value)
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise ConfigError(f"template markers left unfilled: {sorted(set(leftover))}")
    return text


def check_rendered_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise ManifestHardeningError if a rendered manifest (parsed TOML) weakens a guarantee."""
    insecure = sorted(_keys_containing(manifest, "insecure__"))
    if insecure:
        raise ManifestHardeningError(f"insecure manifest keys present: {insecure}")
    sgx = _table(manifest, "sgx")
    loader = _table(manifest, "loader")
    if sgx.get("debug", False) is not False:
        raise ManifestHardeningError("sgx.debug must be false: a debug enclave's memory is readable by the host")
    if sgx.get("remote_attestation") != "dcap":
        raise ManifestHardeningError('sgx.remote_attestation must be "dcap" or the enclave cannot be attested')
    if sgx.get("file_check_policy", "strict") != "strict":
        raise ManifestHardeningError('sgx.file_check_policy must be "strict": other policies open unknown files')
    if sgx.get("enable_stats", False) or _table(sgx, "profile").get("enable", "none") != "none":
        raise ManifestHardeningError("SGX stats and profiling are debug-only features")
    _check_allowed_files(sgx.get("allowed_files", []), _table(manifest, "fs").get("mounts", []))
    try:
        parse_enclave_size(str(sgx.get("enclave_size", "")))
    except ConfigError as exc:
        raise ManifestHardeningError(f"sgx.enclave_size: {exc}") from exc
    if int(sgx.get("max_threads", 0)) < MIN_MAX_THREADS:
        raise ManifestHardeningError(f"sgx.max_threads must be >= {MIN_MAX_THREADS}")
    _check_thread_slots(int(sgx.get("max_threads", 0)), loader)
    if loader.get("log_level", "error") not in ALLOWED_LOG_LEVELS:
        raise ManifestHardeningError(f"loader.log_level {loader.get('log_level')!r} leaks enclave internals")
    if not loader.get("argv") or "argv_src_file" in loader or "env_src_file" in loader:
        raise ManifestHardeningError("the command line and environment must be fixed in the manifest")
    for name, value in _table(loader, "env").items():
        if isinstance(value, Mapping) and value.get("passthrough"):
            raise ManifestHardeningError(f"loader.env.{name} is passed through from the host")
    mounts = _table(manifest, "fs").get("mounts", [])
    if any(isinstance(m, Mapping) and m.get("type") == "untrusted_shm" for m in mounts):
        raise ManifestHardeningError("untrusted shared memory mounts expose enclave data to the host")
    encrypted = [m for m in mounts if isinstance(m, Mapping) and m.get("type") == "encrypted"]
    if not encrypted:
        raise ManifestHardeningError("the node state needs an encrypted mount")
    for mount in encrypted:
        # Any other key opens to more than this build: _sgx_mrsigner to every enclave the signing key's holder
        # (the operator) signs, "default" and provisioned keys to whoever provisions them (issue 10 §3).
        if mount.get("key_name") != STATE_SEALING_KEY:
            raise ManifestHardeningError(
                f"encrypted mount {mount.get('path')!r} uses key {mount.get('key_name', 'default')!r}: it must be "
                f"{STATE_SEALING_KEY!r}, or another enclave signed with the same key could read the node's state"
            )


def _check_allowed_files(allowed: object, mounts: object) -> None:
    """Only the collateral directory may be an allowed (unmeasured, unprotected) file: Intel signs its content
    and verifiers check it, so the host can at worst make attestation fail. Anything else must be trusted."""
    if not allowed:
        return
    collateral_uris = [
        str(m.get("uri", "")).rstrip("/") + "/"
        for m in (mounts if isinstance(mounts, list) else [])
        if isinstance(m, Mapping)
        and str(m.get("path", "")).rstrip("/") == COLLATERAL_MOUNT
        and m.get("type", "chroot") == "chroot"
    ]
    if not isinstance(allowed, list) or any(str(uri) not in collateral_uris for uri in allowed):
        raise ManifestHardeningError(
            f"sgx.allowed_files may hold only the collateral directory mounted at {COLLATERAL_MOUNT} "
            f"({collateral_uris or 'not mounted'}), got {allowed}"
        )


def _check_thread_slots(max_threads: int, loader: Mapping[str, Any]) -> None:
    argv = loader.get("argv", [])
    if not isinstance(argv, list) or "--rpc-workers" not in argv:
        return  # not the aggregator's command line: nothing to derive from
    try:
        rpc_workers = int(argv[argv.index("--rpc-workers") + 1])
        tokio_workers = int(_table(loader, "env").get("TOKIO_WORKER_THREADS", "0"))
    except (IndexError, ValueError) as exc:
        raise ManifestHardeningError(f"--rpc-workers and TOKIO_WORKER_THREADS must be integers: {exc}") from exc
    if tokio_workers < 1:
        raise ManifestHardeningError("loader.env.TOKIO_WORKER_THREADS must be set: tokio would size from host cores")
    needed = required_max_threads(rpc_workers=rpc_workers, tokio_workers=tokio_workers)
    if max_threads < needed:
        raise ManifestHardeningError(
            f"sgx.max_threads = {max_threads} is below the {needed} that {rpc_workers} gRPC workers and "
            f"{tokio_workers} tokio workers need (enclavefl.tee.gramine_pkg.threads)"
        )


def _table(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        raise ManifestHardeningError(f"manifest key {key!r} must be a table")
    return value


def _keys_containing(node: object, needle: str, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if needle in str(key):
                found.append(path)
            found.extend(_keys_containing(value, needle, path + "."))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_keys_containing(item, needle, f"{prefix}[{index}]."))
    return found

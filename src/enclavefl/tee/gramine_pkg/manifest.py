"""The aggregator's Gramine manifest: the enclave's settings, its fixed paths and the rendering into a release.

    params = ManifestParams(enclave_size="2G", rpc_workers=8, isv_prod_id=1, isv_svn=1)
    text = render_release_manifest(params, trusted=("file:venv/bin/python3", ...))

The manifest lives in a release directory (tee/gramine_pkg/assemble.py) and names host files only by URIs
relative to it: the runtime (interpreter, stdlib, native libraries) and Gramine's own runtime are copied into the
release, so nothing the enclave trusts comes from the host's /usr and the release measures the same wherever it is
installed. Inside the enclave the runtime sits at the paths the interpreter was built for (/usr/lib/python3.11,
/usr/lib/x86_64-linux-gnu), the venv at /opt/enclavefl/venv. `gramine-manifest` then only hashes the trusted files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Final

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg.threads import DEFAULT_RPC_WORKERS, required_max_threads
from enclavefl.tee.process_env import MALLOC_ARENA_MAX

TEMPLATE_NAME: Final = "aggregator.manifest.template"

# Paths inside the enclave. The runtime keeps the paths Debian's python3.11 was built for; the host side of every
# mount is the release directory's subdirectory of the same name (runtime/usr/lib/..., venv, job, ...).
VENV_MOUNT: Final = "/opt/enclavefl/venv"
ENCLAVE_PYTHON: Final = f"{VENV_MOUNT}/bin/python3"
STDLIB_MOUNT: Final = "/usr/lib/python3.11"
LIBDIR_MOUNT: Final = "/usr/lib/x86_64-linux-gnu"
JOB_MOUNT: Final = "/enclavefl/job"
STATE_MOUNT: Final = "/enclavefl/state"
COLLATERAL_MOUNT: Final = "/enclavefl/collateral"
COLLATERAL_FILE_NAME: Final = "collateral.json"  # what `enclavefl node agent` writes into the collateral dir
# The job as the operator wrote it (measured, what rebuilds start from) and in its canonical form, the one the entry
# point loads (`assemble` writes it from the TOML; core/job_canonical.py checks it is the canonical text of a job).
JOB_TOML_IN_ENCLAVE: Final = f"{JOB_MOUNT}/job.toml"
JOB_FILE_IN_ENCLAVE: Final = f"{JOB_MOUNT}/job.json"
COLLATERAL_FILE_IN_ENCLAVE: Final = f"{COLLATERAL_MOUNT}/{COLLATERAL_FILE_NAME}"
# Release-relative homes of Gramine's LibOS and patched glibc, copied from the Gramine that signs the release.
GRAMINE_LIBOS: Final = "gramine/libsysdb.so"
GRAMINE_RUNTIME: Final = "gramine/runtime/glibc"

# The aggregator's entry module is written by the network engineer; change it here only.
AGGREGATOR_ENTRY_MODULE: Final = "enclavefl.enclave.main"


def aggregator_args(*, port: int, rpc_workers: int, enclave_mib: int) -> tuple[str, ...]:
    """Everything after the interpreter on the enclave's fixed command line."""
    return (
        "-I",  # isolated: ignore PYTHON* variables, user site and the working directory
        "-B",  # no .pyc writes (trusted directories are read-only anyway)
        "-m",
        AGGREGATOR_ENTRY_MODULE,
        "--job",
        JOB_FILE_IN_ENCLAVE,
        "--state",
        STATE_MOUNT,
        "--listen",
        f"0.0.0.0:{port}",
        # The enclave makes no outbound connection: the host agent (`enclavefl node agent`) fetches the collateral
        # and writes it here. Intel signs it and every data owner verifies it, so an untrusted carrier is fine.
        "--collateral",
        COLLATERAL_FILE_IN_ENCLAVE,
        # sgx.max_threads is computed from this (threads.py): the pool must not grow with the host's cores.
        "--rpc-workers",
        str(rpc_workers),
        # The signed size: the node refuses at start a job whose model this enclave cannot hold.
        "--enclave-mib",
        str(enclave_mib),
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
# A relative URI path inside the release: no "..", no leading "/", nothing that breaks a TOML string or Jinja.
_RELEASE_PATH_RE: Final = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9._+/-]+$")


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


def format_enclave_size(size: int) -> str:
    """The Gramine size string of a power of two ("1G", "512M")."""
    for unit in ("T", "G", "M", "K"):
        if size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


def enclave_size_for(needed_bytes: int) -> str:
    """The smallest enclave size Gramine accepts (a power of two, at least 256M) that holds `needed_bytes`."""
    size = MIN_ENCLAVE_SIZE
    while size < needed_bytes:
        size *= 2
    return format_enclave_size(size)


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestParams:
    """The enclave's settings (release.toml's [enclave] table); paths are fixed, not parameters."""

    enclave_size: str = "1G"
    rpc_workers: int = DEFAULT_RPC_WORKERS  # the gRPC server's Python worker threads
    max_threads: int | None = None  # None: required_max_threads(rpc_workers)
    isv_prod_id: int = 0
    isv_svn: int = 0
    port: int = 7443
    log_level: str = "error"

    def __post_init__(self) -> None:
        parse_enclave_size(self.enclave_size)
        for field in ("rpc_workers", "isv_prod_id", "isv_svn", "port"):
            if isinstance(getattr(self, field), bool) or not isinstance(getattr(self, field), int):
                raise ConfigError(f"{field} must be an integer, got {getattr(self, field)!r}")
        if not 1 <= self.rpc_workers <= 1024:
            raise ConfigError(f"rpc_workers must be 1..1024, got {self.rpc_workers}")
        needed = required_max_threads(rpc_workers=self.rpc_workers)
        if self.max_threads is not None and not needed <= self.max_threads <= 4096:
            raise ConfigError(
                f"max_threads must be between {needed} (what {self.rpc_workers} gRPC work threads need, with headroom) "
                f"and 4096, got {self.max_threads}"
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
        return required_max_threads(rpc_workers=self.rpc_workers)

    @property
    def enclave_size_bytes(self) -> int:
        return parse_enclave_size(self.enclave_size)


def check_release_path(what: str, path: str) -> str:
    """`path` if it is a plain relative path inside the release directory; ConfigError otherwise."""
    if not _RELEASE_PATH_RE.match(path) or len(path) > 512:
        raise ConfigError(f"{what} {path!r} is not a relative path inside the release (no '..', no leading '/')")
    return path


def render_release_manifest(params: ManifestParams, *, trusted: Iterable[str]) -> str:
    """The manifest of a release: `trusted` are release-relative paths ("venv/bin/python3", "job/")."""
    entries = [f'  "file:{check_release_path("trusted file", path)}",' for path in trusted]
    args = aggregator_args(
        port=params.port, rpc_workers=params.rpc_workers, enclave_mib=params.enclave_size_bytes >> 20
    )
    argv = json.dumps([ENCLAVE_PYTHON, *args])
    raw = resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    return fill_markers(
        raw,
        {
            "PYTHON": ENCLAVE_PYTHON,
            "LIBOS": GRAMINE_LIBOS,
            "LOG_LEVEL": params.log_level,
            "ARGV": argv,  # a JSON string array is a TOML array
            "LIBDIR": LIBDIR_MOUNT,
            "MALLOC_ARENA_MAX": str(MALLOC_ARENA_MAX),
            "GRAMINE_RUNTIME": GRAMINE_RUNTIME,
            "STDLIB": STDLIB_MOUNT,
            "VENV": VENV_MOUNT,
            "JOB_MOUNT": JOB_MOUNT,
            "COLLATERAL_MOUNT": COLLATERAL_MOUNT,
            "STATE_MOUNT": STATE_MOUNT,
            "ENCLAVE_SIZE": params.enclave_size,
            "MAX_THREADS": str(params.thread_slots),
            "ISV_PROD_ID": str(params.isv_prod_id),
            "ISV_SVN": str(params.isv_svn),
            "TRUSTED_FILES": "\n".join(entries),
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

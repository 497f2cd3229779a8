"""Which TEE a node process runs on, and the data owners' policy for a simulated platform.

    tee = open_node_tee("insecure-simulation", platform_dir=Path("platform"))      # INSECURE, warns
    write_simulation_policy(Path("platform"), Path("policy.toml"))               # what data owners pin

The simulated platform is a directory (see tee.insecure.simulation.SimulatedPlatform): the node process and
the policy writer load the same one, so the node's quotes verify under the root CA the policy names. Its
MRENCLAVE is `measure_aggregator_code()`: edit the aggregator's code and the old policy refuses the node.
No torch here: a node process stays enclave-sized.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enclavefl.errors import ConfigError, StateDirInUse
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.inside.gramine import DEFAULT_ATTESTATION_ROOT
from enclavefl.tee.verify.policy import AttestationPolicy

if TYPE_CHECKING:  # the job spec imports numpy: `--help` need not
    from enclavefl.core.job import JobSpec

TeeChoice = Literal["gramine", "insecure-simulation"]
TEE_CHOICES: Final[tuple[TeeChoice, ...]] = ("gramine", "insecure-simulation")

INSECURE_BANNER: Final = (
    "INSECURE SIMULATION: this node runs in a simulated enclave. Its DCAP quotes are real-format and verified "
    "by dcap-qvl, but signed by a local test hierarchy: they prove the protocol, not confidentiality. The host "
    "can read every update. Data owners accept it only with `allow_simulation` in their policy. Use "
    "`--tee gramine` on SGX hardware for a real enclave."
)


def default_state_dir(job_file: Path, job: JobSpec) -> Path:
    """Where a node keeps its sealed state unless told otherwise: beside the job file, named by the job digest.

    The same job served again finds its state and resumes; another job never shares it.
    """
    return job_file.absolute().parent / f"node-state-{job.digest().hex()[:16]}"


@contextlib.contextmanager
def hold_state_dir(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `state_dir` while a node runs (StateDirInUse if another node holds it).

    Two nodes on one state directory would each clean up and overwrite the other's sealed checkpoints.
    The lock is the host's (flock), taken before the enclave starts; it dies with the process.
    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_path = state_dir / "node.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StateDirInUse(
                f"another node (pid {holder}) already serves from {state_dir}: stop it first, or serve another job"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def open_node_tee(
    kind: str,
    *,
    platform_dir: Path | None = None,
    collateral: Path | None = None,
    attestation_root: Path = DEFAULT_ATTESTATION_ROOT,
) -> TeeBackend:
    """The backend named `kind`; ConfigError when its inputs are missing, TeeUnavailable when it cannot run here."""
    if kind == "gramine":
        from enclavefl.enclave.main import gramine_backend  # the node's own modules; `--help` need not load them

        return gramine_backend(collateral=collateral, attestation_root=attestation_root)
    if kind == "insecure-simulation":
        if platform_dir is None:
            raise ConfigError("--platform-dir DIR: the simulated platform's directory (created if absent)")
        return simulation_backend(platform_dir)
    raise ConfigError(f"--tee {kind!r}: expected one of {', '.join(TEE_CHOICES)}")


def simulation_backend(platform_dir: Path) -> InsecureSimulationBackend:
    """An INSECURE simulated enclave on the platform in `platform_dir` (created if absent)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # callers print INSECURE_BANNER instead of a Python warning
        return InsecureSimulationBackend(SimulatedPlatform.load_or_create(platform_dir))


def simulation_policy(platform_dir: Path) -> AttestationPolicy:
    """Strict policy pinning the simulated MRENCLAVE of this code, accepting this platform's root only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        platform = SimulatedPlatform.load_or_create(platform_dir)
        return (
            AttestationPolicy.strict().allow_mrenclave(measure_aggregator_code()).allow_simulation(platform.root_ca_der)
        )


def root_ca_file_name(root_der: bytes) -> str:
    """The root CA's file name beside a policy, named by its fingerprint so two platforms never share one."""
    return f"simulation_root_ca-{hashlib.sha256(root_der).hexdigest()[:16]}.pem"


def write_simulation_policy(platform_dir: Path, out: Path) -> Path:
    """Write the data owners' policy TOML for the simulated platform, and its root CA (PEM) beside it.

    The root's file is named by its fingerprint, so a policy for another platform already in that directory
    keeps its own root; an existing policy file at `out` for another platform is refused, not overwritten.
    """
    policy = simulation_policy(platform_dir)
    root_der = policy.simulation_root_ca_der
    if root_der is None:  # allow_simulation above always sets it
        raise ConfigError("the simulation policy has no root CA")
    root_name = root_ca_file_name(root_der)
    if out.exists() and root_name not in out.read_text(errors="replace"):
        raise ConfigError(
            f"{out} already holds a policy for another simulated platform (its root is not {root_name}); "
            "remove it or choose another --out"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    root_pem = x509.load_der_x509_certificate(root_der).public_bytes(serialization.Encoding.PEM)
    (out.parent / root_name).write_bytes(root_pem)
    header = (
        "# INSECURE: accepts a SIMULATED enclave (development only). MRENCLAVE is the simulated measurement of\n"
        "# the aggregator's code (enclavefl.tee.insecure.measurement); any code change needs a new policy.\n"
    )
    out.write_text(header + policy.to_toml(simulation_root_ca=root_name))
    return out

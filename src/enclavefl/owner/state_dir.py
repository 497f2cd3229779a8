"""Where an owner's durable state lives by default, and the lock that keeps one job's state to one process.

    directory = resolve_state_dir(None, certificate_pem=cert, role=DATA_OWNER)   # ~/.local/state/enclavefl/...
    with hold_owner_state(directory, job_digest=job.digest()) as lock:          # StateDirInUse if another holds it
        ...                                                                     # lock.path names the lock file

An owner that forgets which rounds it signed can be made to upload a round again to a rolled-back node, and two
releases of one round with one owner fewer give that owner's exact update (docs/threat-model.md). So state is
kept by default: `$XDG_STATE_HOME/enclavefl/data-owners/<certificate fingerprint>/` (`~/.local/state/...` when
XDG_STATE_HOME is unset), one directory per owner key, per user. It holds one file per job for the receipt chain
and the rounds signed (`receipts-<job>.json`) and the commitment salts (`commitments-<job>.json`), and the lifetime
privacy ledger over every job (`privacy-ledger.json`; why one directory per key and not per job: a per-job ledger
would reset the lifetime budget with every job). `--state DIR` chooses another directory with the same layout;
keeping none is the explicit, INSECURE opt-out (`--insecure-no-state`). The model owner's commands keep their
receipt memory the same way under `model-owners/`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from enclavefl.errors import ConfigError, StateDirInUse, StateDirUnwritable

Role = Literal["data-owners", "model-owners"]
DATA_OWNER: Final[Role] = "data-owners"
MODEL_OWNER: Final[Role] = "model-owners"
PREFIX: Final = 16  # hex digits of the certificate fingerprint and of the job digest in names


def state_home() -> Path:
    """`$XDG_STATE_HOME/enclavefl`, or `~/.local/state/enclavefl` (the XDG base directory rule: absolute only)."""
    configured = os.environ.get("XDG_STATE_HOME", "")
    if configured and Path(configured).is_absolute():
        return Path(configured) / "enclavefl"
    try:
        return Path.home() / ".local" / "state" / "enclavefl"
    except RuntimeError:  # no HOME and no passwd entry: nowhere to keep state without being told
        raise ConfigError("no home directory to keep owner state in: set XDG_STATE_HOME or pass --state DIR") from None


def certificate_fingerprint(certificate_pem: bytes) -> str:
    """SHA-256 of the certificate's DER encoding, in hex (what `openssl x509 -fingerprint -sha256` prints)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def default_state_dir(*, certificate_pem: bytes, role: Role) -> Path:
    """This user's state directory for the owner holding this certificate's key."""
    return state_home() / role / certificate_fingerprint(certificate_pem)[:PREFIX]


def resolve_state_dir(
    state_dir: Path | None, *, certificate_pem: bytes, role: Role, insecure_no_state: bool = False
) -> Path | None:
    """`state_dir` if given, none when the caller opted out (INSECURE), else the default for this key."""
    if insecure_no_state:
        if state_dir is not None:
            raise ConfigError("--state and --insecure-no-state contradict each other: give one")
        return None
    if state_dir is not None:
        return state_dir
    return default_state_dir(certificate_pem=certificate_pem, role=role)


class StateLock:
    """An exclusive flock on `<directory>/<role>-<job>.lock`, held until `release()` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_path(directory: Path, *, job_digest: bytes, role: Role = DATA_OWNER) -> Path:
    return directory / f"{role.removesuffix('s')}-{job_digest.hex()[:PREFIX]}.lock"


def try_hold_owner_state(directory: Path, *, job_digest: bytes, role: Role = DATA_OWNER) -> StateLock | int:
    """The lock, or the pid written by the process that holds it (0 when it wrote none)."""
    path = lock_path(directory, job_digest=job_digest, role=role)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateDirUnwritable(
            f"{directory}: cannot keep your state there ({exc.strerror or exc}); nothing was sent. Give --state DIR "
            "on a writable disk (move the existing directory there if you have one)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        return int(holder) if holder.isdigit() else 0
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateLock(path, fd)


def hold_owner_state(directory: Path, *, job_digest: bytes, role: Role = DATA_OWNER) -> StateLock:
    """Lock this job's state in `directory` for this process; StateDirInUse (one line) if another holds it.

    Two processes of one owner in one job would each sign rounds the other does not remember.
    """
    held = try_hold_owner_state(directory, job_digest=job_digest, role=role)
    if isinstance(held, StateLock):
        return held
    who = f"process {held}" if held else "another process"
    raise StateDirInUse(
        f"{lock_path(directory, job_digest=job_digest, role=role)} is held by {who}: this owner already runs job "
        f"{job_digest.hex()[:PREFIX]} from this state directory; stop it first (or wait for it to end)"
    )

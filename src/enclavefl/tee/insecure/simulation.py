"""INSECURE simulated SGX platform and the TEE backend built on it.

`SimulatedPlatform` is a directory holding a test certificate hierarchy shaped like Intel's, a
simulated enclave-signing key (for MRSIGNER) and a platform secret (for sealing keys). Separate
processes that load the same directory share one platform: quotes made by one verify under the
root CA read by another. `InsecureSimulationBackend` emulates Gramine's `/dev/attestation` on top of
it and produces real-format DCAP v3 quotes that dcap-qvl's `verify_with_root_ca` accepts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclavefl.errors import TeeUnavailable
from enclavefl.tee.evidence import Evidence, TeeKind
from enclavefl.tee.insecure._collateral_builder import (
    PCE_ID,
    PCE_SVN,
    build_collateral_json,
    collateral_window,
    component_svns_for,
)
from enclavefl.tee.insecure._device import SimulatedAttestationDevice
from enclavefl.tee.insecure._pki import (
    TestHierarchy,
    generate_hierarchy,
    issue_pck_leaf,
    load_hierarchy,
    save_hierarchy,
    write_private_file,
)
from enclavefl.tee.insecure._quote_builder import SimulatedEnclaveIdentity, build_quote, qe_section
from enclavefl.tee.insecure._sgx_extension import PckTcb
from enclavefl.tee.insecure._warnings import warn_insecure
from enclavefl.tee.insecure.measurement import (
    generate_enclave_signing_key,
    measure_aggregator_code,
    mrsigner_of,
)

__all__ = [
    "InsecureSimulationBackend",
    "SimulatedAttestationDevice",
    "SimulatedEnclaveIdentity",
    "SimulatedPlatform",
]

_FORMAT: Final = "enclavefl-simulated-platform/1"
_INFO_FILE: Final = "platform.json"
_SECRET_FILE: Final = "platform_secret.bin"  # noqa: S105 (a file name, not a secret)
_SIGNING_KEY_FILE: Final = "enclave_signing_key.pem"
_LOCK_FILE: Final = ".lock"
_SEAL_SALT: Final = b"enclavefl simulated EGETKEY v1"


class SimulatedPlatform:
    """A persisted, INSECURE stand-in for one SGX machine: its PKI, QE and sealing secret."""

    def __init__(
        self,
        *,
        directory: Path,
        hierarchy: TestHierarchy,
        enclave_signing_key: rsa.RSAPrivateKey,
        secret: bytes,
        fmspc: bytes,
        ppid: bytes,
    ) -> None:
        """Use `create`, `load` or `load_or_create`."""
        self.directory = directory
        self._hierarchy = hierarchy
        self._secret = secret
        self.fmspc = fmspc
        self._ppid = ppid
        self.mrsigner: bytes = mrsigner_of(enclave_signing_key)
        self.root_ca_der: bytes = hierarchy.root_cert.public_bytes(serialization.Encoding.DER)
        # A QE makes its attestation key when it starts; this process's QE is this object.
        self._attestation_key = ec.generate_private_key(ec.SECP256R1())
        self._lock = threading.Lock()
        self._qe_sections: dict[str, bytes] = {}
        self._collateral: tuple[int, str] | None = None

    # --- lifecycle --------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path | str, *, now: int | None = None) -> SimulatedPlatform:
        """Generate a new platform into `directory` (created if needed; must not hold one)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (path / _INFO_FILE).exists():
            raise FileExistsError(f"{path} already holds a simulated platform; use load()")
        created = int(time.time()) if now is None else now
        hierarchy = generate_hierarchy(dt.datetime.fromtimestamp(created, tz=dt.UTC))
        save_hierarchy(hierarchy, path)
        signing_key = generate_enclave_signing_key()
        signing_pem = signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private_file(path / _SIGNING_KEY_FILE, signing_pem)
        write_private_file(path / _SECRET_FILE, os.urandom(32))
        info = {"format": _FORMAT, "created_at": created, "fmspc": "00DEC0DE0000", "ppid": os.urandom(16).hex()}
        # Written last: its presence marks a complete platform.
        write_private_file(path / _INFO_FILE, json.dumps(info, indent=2).encode())
        return cls.load(path)

    @classmethod
    def load(cls, directory: Path | str) -> SimulatedPlatform:
        """Load a platform that `create` wrote, possibly in another process."""
        path = Path(directory)
        try:
            info = json.loads((path / _INFO_FILE).read_text())
            secret = (path / _SECRET_FILE).read_bytes()
            signing_key = serialization.load_pem_private_key((path / _SIGNING_KEY_FILE).read_bytes(), None)
        except FileNotFoundError as exc:
            raise TeeUnavailable(f"no complete simulated platform at {path}: {exc.filename} missing") from exc
        if info.get("format") != _FORMAT:
            raise TeeUnavailable(f"{path / _INFO_FILE} has format {info.get('format')!r}, expected {_FORMAT!r}")
        if not isinstance(signing_key, rsa.RSAPrivateKey) or len(secret) != 32:
            raise TeeUnavailable(f"simulated platform at {path} has a malformed signing key or secret")
        return cls(
            directory=path,
            hierarchy=load_hierarchy(path),
            enclave_signing_key=signing_key,
            secret=secret,
            fmspc=bytes.fromhex(info["fmspc"]),
            ppid=bytes.fromhex(info["ppid"]),
        )

    @classmethod
    def load_or_create(cls, directory: Path | str, *, now: int | None = None) -> SimulatedPlatform:
        """Load the platform in `directory`, creating it first if absent (safe across processes)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(path / _LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if (path / _INFO_FILE).exists():
                return cls.load(path)
            return cls.create(path, now=now)

    # --- evidence ---------------------------------------------------------------------------
    def _pck_tcb(self, tcb_status: str) -> PckTcb:
        svns = component_svns_for(tcb_status)
        return PckTcb(
            ppid=self._ppid,
            component_svns=svns,
            pce_svn=PCE_SVN,
            cpu_svn=bytes(svns),
            pce_id=PCE_ID,
            fmspc=self.fmspc,
        )

    def _qe_section(self, tcb_status: str) -> bytes:
        with self._lock:
            cached = self._qe_sections.get(tcb_status)
        if cached is not None:
            return cached
        h = self._hierarchy
        leaf = issue_pck_leaf(h, self._pck_tcb(tcb_status))
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, h.pck_ca_cert, h.root_cert))
        section = qe_section(
            attestation_key=self._attestation_key,
            pck_leaf_key=h.pck_leaf_key,
            cpu_svn=bytes(component_svns_for(tcb_status)),
            pem_chain=chain,
        )
        with self._lock:
            return self._qe_sections.setdefault(tcb_status, section)

    def quote(self, identity: SimulatedEnclaveIdentity, report_data: bytes, *, tcb_status: str) -> bytes:
        """A DCAP v3 quote for `identity` binding `report_data`, on a platform rated `tcb_status`."""
        return build_quote(
            identity=identity,
            report_data=report_data,
            cpu_svn=bytes(component_svns_for(tcb_status)),
            attestation_key=self._attestation_key,
            qe_section_bytes=self._qe_section(tcb_status),
        )

    def collateral_json(self, *, now: int) -> str:
        """`QuoteCollateralV3` JSON as a host agent fetching at `now` would get it (valid 30 days)."""
        window = collateral_window(now)
        key = int(window.issued.timestamp())
        with self._lock:
            if self._collateral is not None and self._collateral[0] == key:
                return self._collateral[1]
        text = build_collateral_json(self._hierarchy, fmspc=self.fmspc, window=window)
        with self._lock:
            self._collateral = (key, text)
        return text

    def sealing_key(self, identity: SimulatedEnclaveIdentity, name: str) -> bytes:
        """16 bytes bound to this platform, the enclave identity and `name` (like SGX EGETKEY).

        `_sgx_mrenclave` (and every other name) binds MRENCLAVE: an enclave of the same signer with other code
        derives another key. Only `_sgx_mrsigner` is shared by every enclave signed with the platform's key.
        """
        if name == "_sgx_mrsigner":
            bound = b"mrsigner" + identity.mrsigner + identity.isv_prod_id.to_bytes(2, "little")
        else:
            bound = b"mrenclave" + identity.mrenclave
        info = b"".join((bound, identity.isv_svn.to_bytes(2, "little"), bytes([identity.debug]), name.encode()))
        return HKDF(algorithm=hashes.SHA256(), length=16, salt=_SEAL_SALT, info=info).derive(self._secret)


class InsecureSimulationBackend:
    """A TeeBackend on a `SimulatedPlatform`: real-format evidence, no protection at all. INSECURE."""

    def __init__(
        self,
        platform: SimulatedPlatform,
        *,
        mrenclave: bytes | None = None,
        isv_prod_id: int = 0,
        isv_svn: int = 0,
        debug: bool = False,
        tcb_status: str = "UpToDate",
        clock: Callable[[], float] | None = None,
    ) -> None:
        component_svns_for(tcb_status)  # validates the name early
        self.platform = platform
        self.identity = SimulatedEnclaveIdentity(
            mrenclave=measure_aggregator_code() if mrenclave is None else mrenclave,
            mrsigner=platform.mrsigner,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            debug=debug,
        )
        self.tcb_status = tcb_status
        self._clock = clock if clock is not None else time.time
        self.device = SimulatedAttestationDevice(
            quote_for=lambda rd: platform.quote(self.identity, rd, tcb_status=tcb_status),
            key_for=lambda name: platform.sealing_key(self.identity, name),
        )
        self._lock = threading.Lock()
        warn_insecure(f"InsecureSimulationBackend (platform {platform.directory})")

    @property
    def name(self) -> str:
        return "insecure-simulation"

    @property
    def is_insecure(self) -> bool:
        return True

    def evidence(self, report_data: bytes) -> Evidence:
        """A quote binding exactly these 64 bytes plus collateral issued at the clock's `now`."""
        if len(report_data) != 64:
            raise ValueError(f"report data must be exactly 64 bytes, got {len(report_data)}")
        with self._lock:  # user_report_data then quote must not interleave across threads
            self.device.write_user_report_data(report_data)
            quote = self.device.read_quote()
        return Evidence(
            tee=TeeKind.SGX, quote=quote, collateral_json=self.platform.collateral_json(now=int(self._clock()))
        )

    def sealing_key(self, name: str = "_sgx_mrenclave") -> bytes:
        """Gramine's `/dev/attestation/keys/<name>`, simulated: 16 bytes."""
        return self.device.read_key(name)

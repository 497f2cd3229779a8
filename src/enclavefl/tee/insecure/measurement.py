"""Simulated enclave measurements: MRENCLAVE from the enclave's code, MRSIGNER from an RSA key.

The simulated MRENCLAVE is NOT what `gramine-sgx-sign` would print for the same code (that one also
covers the manifest, Python, Gramine and every library). It only has the property that matters to a
policy test: change a file the enclave runs (any module of its import closure, tee/gramine_pkg/tcb.py) and
the measurement changes; change data-owner, model-owner or CLI code and it does not.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa

from enclavefl.tee.gramine_pkg.tcb import enclave_modules

_DOMAIN: Final = b"enclavefl simulated MRENCLAVE v2\x00"
# insecure/ -> tee/ -> enclavefl/
ENCLAVEFL_PACKAGE_DIR: Final = Path(__file__).resolve().parents[2]


def aggregator_code_files(package_dir: Path | None = None) -> list[Path]:
    """The enclave's .py files (its import closure), relative to the package directory, in measurement order."""
    root = package_dir if package_dir is not None else ENCLAVEFL_PACKAGE_DIR
    return sorted((Path(m.path) for m in enclave_modules(package_dir=root)), key=lambda p: p.as_posix())


def measure_aggregator_code(package_dir: Path | None = None) -> bytes:
    """SHA-256 over the sorted (relative path, content) pairs of the aggregator's code: 32 bytes.

    `package_dir` defaults to the installed `enclavefl` package, measured once per process (like a real
    enclave's, fixed when it starts; reading the closure costs tens of milliseconds); tests pass a copy.
    """
    return _installed_measurement() if package_dir is None else _measure(package_dir)


@functools.cache
def _installed_measurement() -> bytes:
    return _measure(ENCLAVEFL_PACKAGE_DIR)


def _measure(root: Path) -> bytes:
    digest = hashlib.sha256(_DOMAIN)
    for relative in aggregator_code_files(root):
        name = relative.as_posix().encode()
        content = (root / relative).read_bytes()
        # Length prefixes keep (path, content) boundaries unambiguous.
        digest.update(len(name).to_bytes(8, "little") + name)
        digest.update(len(content).to_bytes(8, "little") + content)
    return digest.digest()


def mrsigner_of(signing_key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> bytes:
    """Gramine's MRSIGNER rule: SHA-256 of the RSA-3072 modulus as 384 little-endian bytes."""
    public = signing_key.public_key() if isinstance(signing_key, rsa.RSAPrivateKey) else signing_key
    if public.key_size != 3072:
        raise ValueError(f"SGX enclave signing keys are RSA-3072, got RSA-{public.key_size}")
    return hashlib.sha256(public.public_numbers().n.to_bytes(384, "little")).digest()


def generate_enclave_signing_key() -> rsa.RSAPrivateKey:
    """An RSA-3072 key with e=3, like `gramine-sgx-gen-private-key`."""
    return rsa.generate_private_key(public_exponent=3, key_size=3072)

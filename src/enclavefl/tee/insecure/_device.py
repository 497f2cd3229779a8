"""An in-process emulation of Gramine's `/dev/attestation` (libos/src/fs/dev/attestation.c)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from enclavefl.errors import TeeUnavailable

USER_REPORT_DATA_SIZE: Final = 64
KEY_SIZE: Final = 16
_READ_ONLY_KEYS: Final = frozenset({"_sgx_mrenclave", "_sgx_mrsigner"})


class SimulatedAttestationDevice:
    """The operations of `/dev/attestation` with Gramine's semantics, minus the hardware.

    - `attestation_type` is "dcap";
    - `user_report_data` takes any write: shorter is zero-padded, longer truncated, as Gramine does;
    - `quote` is a DCAP quote over the current user report data;
    - `keys/<name>` are 16 bytes; `_sgx_mrenclave`/`_sgx_mrsigner` are read-only, others may be
      written (exactly 16 bytes) as secret provisioning does, and the written value shadows the
      derived one for this process only.
    """

    def __init__(self, *, quote_for: Callable[[bytes], bytes], key_for: Callable[[str], bytes]) -> None:
        self._quote_for = quote_for
        self._key_for = key_for
        self._user_report_data = bytes(USER_REPORT_DATA_SIZE)
        self._written_keys: dict[str, bytes] = {}

    @property
    def attestation_type(self) -> str:
        return "dcap"

    def write_user_report_data(self, data: bytes) -> None:
        """Replace the report data, padding or truncating to 64 bytes like Gramine."""
        self._user_report_data = data[:USER_REPORT_DATA_SIZE].ljust(USER_REPORT_DATA_SIZE, b"\x00")

    def read_user_report_data(self) -> bytes:
        return self._user_report_data

    def read_quote(self) -> bytes:
        """A fresh quote over the current user report data."""
        return self._quote_for(self._user_report_data)

    def read_key(self, name: str) -> bytes:
        """`keys/<name>`: 16 bytes."""
        _check_key_name(name)
        return self._written_keys.get(name) or self._key_for(name)

    def write_key(self, name: str, key: bytes) -> None:
        """Set `keys/<name>` for this process; Gramine refuses (EACCES) anything but 16 bytes."""
        _check_key_name(name)
        if name in _READ_ONLY_KEYS:
            raise PermissionError(f"/dev/attestation/keys/{name} is read-only")
        if len(key) != KEY_SIZE:
            raise PermissionError(f"/dev/attestation/keys/{name} takes exactly {KEY_SIZE} bytes, got {len(key)}")
        self._written_keys[name] = bytes(key)


def _check_key_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise TeeUnavailable(f"no key {name!r} under /dev/attestation/keys")

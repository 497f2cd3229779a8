"""The real backend: Intel SGX under Gramine, through the `/dev/attestation` pseudo-files.

Gramine semantics this relies on (libos/src/fs/dev/attestation.c, Documentation/attestation.rst):
each `write()` syscall to `user_report_data` replaces the whole value, so the 64 bytes go in ONE
unbuffered write; `quote` is then generated for that value; `keys/<name>` hold 16 raw bytes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from enclavefl.errors import TeeUnavailable
from enclavefl.tee.backend import REPORT_DATA_SIZE
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.evidence import Evidence, TeeKind

DEFAULT_ATTESTATION_ROOT: Final = Path("/dev/attestation")
SEALING_KEY_SIZE: Final = 16
# REPORTDATA sits at bytes 368..432 of an SGX quote (header 48 + report body offset 320).
_QUOTE_REPORT_DATA: Final = slice(368, 432)


class GramineBackend:
    """Evidence and sealing keys from Gramine-SGX's `/dev/attestation` (root injectable for tests)."""

    def __init__(self, *, collateral: CollateralSource, root: Path = DEFAULT_ATTESTATION_ROOT) -> None:
        self.root = Path(root)
        self._collateral = collateral
        self._lock = threading.Lock()
        kind = self._attestation_type()
        if kind != "dcap":
            raise TeeUnavailable(
                f"{self.root / 'attestation_type'} says {kind!r}, expected 'dcap': "
                'set sgx.remote_attestation = "dcap" in the manifest and run under gramine-sgx'
            )

    @property
    def name(self) -> str:
        return "gramine-sgx"

    @property
    def is_insecure(self) -> bool:
        return False

    def _attestation_type(self) -> str:
        path = self.root / "attestation_type"
        try:
            return path.read_text().strip()
        except FileNotFoundError as exc:
            raise TeeUnavailable(
                f"{path} does not exist: not running inside a Gramine-SGX enclave (gramine-direct has no attestation)"
            ) from exc

    def evidence(self, report_data: bytes) -> Evidence:
        """Write the 64 report-data bytes, read the quote Gramine makes for them, add collateral."""
        quote = self.quote(report_data)
        return Evidence(tee=TeeKind.SGX, quote=quote, collateral_json=self._collateral.collateral_for(quote))

    def quote(self, report_data: bytes) -> bytes:
        """The quote Gramine makes for these 64 report-data bytes (no collateral)."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(f"report data must be exactly {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
        # user_report_data is process-wide: two threads must not interleave write and read.
        with self._lock:
            with open(self.root / "user_report_data", "wb", buffering=0) as sink:
                written = sink.write(report_data)
            if written != REPORT_DATA_SIZE:
                raise TeeUnavailable(f"short write to user_report_data: {written} of {REPORT_DATA_SIZE} bytes")
            try:
                quote = (self.root / "quote").read_bytes()
            except FileNotFoundError as exc:
                raise TeeUnavailable(f"{self.root / 'quote'} does not exist: is DCAP configured?") from exc
        if quote[_QUOTE_REPORT_DATA] != report_data:
            raise TeeUnavailable("the quote read back does not carry the report data just written")
        return quote

    def sealing_key(self, name: str = "_sgx_mrenclave") -> bytes:
        """`/dev/attestation/keys/<name>`: exactly 16 bytes (default: MRENCLAVE-bound SGX seal key)."""
        if not name or "/" in name or name in (".", ".."):
            raise TeeUnavailable(f"invalid key name {name!r}")
        path = self.root / "keys" / name
        try:
            key = path.read_bytes()
        except FileNotFoundError as exc:
            raise TeeUnavailable(f"{path} does not exist: is {name!r} a key the manifest declares?") from exc
        if len(key) != SEALING_KEY_SIZE:
            raise TeeUnavailable(f"{path} holds {len(key)} bytes, expected {SEALING_KEY_SIZE}")
        return key

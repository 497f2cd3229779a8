"""Where a node gets the collateral that lets others verify its quote offline.

Collateral (TCB info, QE identity, CRLs and their issuer chains) is signed by Intel, so it may come
from anyone: a bundle the host agent caches on disk, or a PCCS. Verifiers check it, not its carrier.
The enclave only reads files (no network, no dcap-qvl); fetching from a PCCS is tee/verify/pccs.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from enclavefl.errors import TeeUnavailable

# The enclave prints one line "platform-quote <hex>" when it starts: a quote over 64 zero bytes, which binds
# nothing (verifiers demand their nonce in the report data) but names the platform (FMSPC, PCK chain), which is
# all the host agent needs to fetch this platform's collateral (host/collateral_agent.py).
PLATFORM_QUOTE_PREFIX: Final = "platform-quote "
# The host agent refreshes the bundle a day before its earliest nextUpdate; re-reading it once a minute keeps the
# enclave within a minute of the file at one read per minute, however many Attest calls arrive.
COLLATERAL_REFRESH_SECONDS: Final = 60.0
log = logging.getLogger(__name__)


@runtime_checkable
class CollateralSource(Protocol):
    """Gives dcap-qvl `QuoteCollateralV3` JSON suitable for verifying `quote`."""

    def collateral_for(self, quote: bytes) -> str:
        """Collateral JSON for this quote; raises `TeeUnavailable` when none can be had."""
        ...


class FileCollateralSource:
    """A bundle the host agent keeps fresh at `path`; read on every call so refreshes show up."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def collateral_for(self, quote: bytes) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise TeeUnavailable(f"no collateral bundle at {self.path}: is the host agent running?") from exc


class CachedCollateralSource:
    """Another source's collateral, kept for `refresh_seconds`: Attest is open to anyone and must stay cheap.

    Collateral names the platform (FMSPC, PCK chain), not the quote's report data, so one bundle serves every quote
    of this enclave. A failed refresh keeps the previous bundle (verifiers check its dates) and is logged.
    """

    def __init__(
        self,
        source: CollateralSource,
        *,
        refresh_seconds: float = COLLATERAL_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (bundle, when it was read)
        self.reads = 0

    def collateral_for(self, quote: bytes) -> str:
        cached = self._cached
        if cached is not None and self._monotonic() - cached[1] < self._refresh_seconds:
            return cached[0]
        with self._lock:  # one reader refreshes; the others wait for it rather than read as well
            cached = self._cached
            if cached is not None and self._monotonic() - cached[1] < self._refresh_seconds:
                return cached[0]
            try:
                text = self.source.collateral_for(quote)
                self.reads += 1
            except TeeUnavailable as exc:
                if cached is None:
                    raise
                log.warning("collateral refresh failed, serving the previous bundle: %s", exc)
                text = cached[0]
            self._cached = (text, self._monotonic())
            return text

"""Where a node gets the collateral that lets others verify its quote offline.

Collateral (TCB info, QE identity, CRLs and their issuer chains) is signed by Intel, so it may come
from anyone: a bundle the host agent caches on disk, or a PCCS. Verifiers check it, not its carrier.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

import dcap_qvl

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


class PccsCollateralSource:
    """Fetches collateral from a PCCS (or Intel PCS) with dcap-qvl's `get_collateral`. Network.

    There is deliberately no default URL: dcap-qvl's own default is a third party's PCCS.
    """

    def __init__(self, pccs_url: str) -> None:
        url = pccs_url.strip()
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"pccs_url must be an http(s) URL, got {pccs_url!r}")
        self.pccs_url = url

    async def fetch(self, quote: bytes) -> str:
        """The async form, for callers already inside an event loop."""
        try:
            collateral = await dcap_qvl.get_collateral(self.pccs_url, quote)
        except (ValueError, RuntimeError) as exc:
            raise TeeUnavailable(f"could not fetch collateral from {self.pccs_url}: {exc}") from exc
        text: str = collateral.to_json()
        return text

    def collateral_for(self, quote: bytes) -> str:
        return asyncio.run(self.fetch(quote))

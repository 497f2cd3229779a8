"""The host agent's collateral duty: fetch this platform's DCAP collateral, keep it fresh on disk.

    service = CollateralService.pccs("https://pccs:8081/")   # or .intel_pcs(), or .cache(provider's URL)
    agent = CollateralAgent(service=service, collateral_dir=Path("collateral"), quote_file=log)
    agent.refresh()                          # fetch now, write DIR/collateral.json atomically, return its expiry
    agent.run(stop)                          # refresh, then again `refresh_margin` before the bundle expires

Where the collateral comes from: Intel's Provisioning Certification Service itself, a PCCS (Intel's caching
service, run by the operator), or a cloud provider's cache of the PCS (the same v4 API under the provider's URL,
e.g. `https://<cache>/sgx/certification/v4/`). All three serve the same Intel-signed documents.

Runs outside the enclave and is not trusted: the collateral is signed by Intel and every data owner verifies
it, so the worst a lying agent (or PCCS) can do is make attestation fail. The enclave reads the file through its
mounted collateral directory and never opens a connection itself. The agent needs one quote of this platform to
know what to fetch (FMSPC and PCK chain): the node prints one at start ("platform-quote <hex>", binding nothing);
point `quote_file` at the node's log, or at a raw quote file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import dcap_qvl
from cryptography import x509

from enclavefl.errors import ConfigError, PlatformQuoteMissing, QuoteFormatError, TeeUnavailable
from enclavefl.tee.collateral import PLATFORM_QUOTE_PREFIX
from enclavefl.tee.gramine_pkg.manifest import COLLATERAL_FILE_NAME
from enclavefl.tee.verify.pccs import PccsCollateralSource

log = logging.getLogger(__name__)
DEFAULT_REFRESH_MARGIN_SECONDS: Final = 24 * 3600  # PCCS collateral lives ~30 days; refresh a day early
# ... and at least daily: owners' policies refuse collateral issued more than 7 days ago by default
# (tee/verify/policy.py), and a daily fetch is how a TCB recovery reaches them within a day.
DEFAULT_REFRESH_INTERVAL_SECONDS: Final = 24 * 3600
RETRY_SECONDS: Final = 60.0
QUOTE_POLL_SECONDS: Final = 2.0  # waiting for the node's platform-quote line: fetch as soon as it appears
MAX_SLEEP_SECONDS: Final = 3600.0  # wake at least hourly (a replaced quote file, a clock jump)


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralService:
    """Where the agent fetches collateral: Intel PCS, a PCCS, or a provider's cache, by the URL of its v4 API."""

    kind: str  # "intel-pcs", "pccs" or "cache"
    url: str

    def __post_init__(self) -> None:
        if self.kind not in ("intel-pcs", "pccs", "cache"):
            raise ConfigError(f"collateral service kind {self.kind!r}: expected intel-pcs, pccs or cache")
        if not self.url.strip().startswith(("https://", "http://")):
            raise ConfigError(f"--{self.kind}-url: an http(s) URL, got {self.url!r}")

    @classmethod
    def intel_pcs(cls) -> CollateralService:
        return cls(kind="intel-pcs", url=dcap_qvl.INTEL_PCS_URL)

    @classmethod
    def pccs(cls, url: str) -> CollateralService:
        return cls(kind="pccs", url=url)

    @classmethod
    def cache(cls, url: str) -> CollateralService:
        return cls(kind="cache", url=url)

    def describe(self) -> str:
        return {"intel-pcs": "Intel PCS", "pccs": "the PCCS", "cache": "the provider cache"}[self.kind] + f" {self.url}"


def collateral_service(*, intel_pcs: bool, pccs_url: str | None, cache_url: str | None) -> CollateralService:
    """The one service the options name; ConfigError for none or several."""
    chosen = [
        s
        for s in (
            CollateralService.intel_pcs() if intel_pcs else None,
            CollateralService.pccs(pccs_url) if pccs_url else None,
            CollateralService.cache(cache_url) if cache_url else None,
        )
        if s is not None
    ]
    if len(chosen) != 1:
        raise ConfigError("name one collateral service: --intel-pcs, --pccs-url URL or --cache-url URL")
    return chosen[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Refreshed:
    path: Path
    expires_at: int  # earliest nextUpdate of TCB info, QE identity and both CRLs (unix seconds)


def read_platform_quote(path: Path) -> bytes:
    """A raw quote file, or the last "platform-quote <hex>" line of a node's log.

    Raises PlatformQuoteMissing while there is none yet, QuoteFormatError for a malformed line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PlatformQuoteMissing(f"no platform quote yet: {path} does not exist (start the node first)") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    prefix = PLATFORM_QUOTE_PREFIX.encode()
    lines = [line for line in data.splitlines() if line.startswith(prefix)]
    if not lines:
        if data[:2] in (b"\x03\x00", b"\x04\x00"):  # a raw DCAP quote (version 3 or 4)
            return data
        raise PlatformQuoteMissing(f"no platform quote yet: {path} has no line starting {PLATFORM_QUOTE_PREFIX!r}")
    try:
        return bytes.fromhex(lines[-1][len(prefix) :].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise QuoteFormatError(f"{path}: the platform-quote line is not hex: {exc}") from exc


def collateral_expiry(collateral_json: str) -> int:
    """Earliest nextUpdate among the TCB info, QE identity and the two CRLs. Raises QuoteFormatError."""
    try:
        outer = json.loads(collateral_json)
        dates = [dt.datetime.fromisoformat(json.loads(outer[key])["nextUpdate"]) for key in ("tcb_info", "qe_identity")]
        for key in ("pck_crl", "root_ca_crl"):
            raw = outer[key]
            crl = x509.load_der_x509_crl(bytes.fromhex(raw) if isinstance(raw, str) else bytes(raw))
            if crl.next_update_utc is not None:
                dates.append(crl.next_update_utc)
    except (ValueError, KeyError, TypeError) as exc:
        raise QuoteFormatError(f"collateral is not QuoteCollateralV3 JSON with readable dates: {exc}") from exc
    return int(min(dates).timestamp())


def write_collateral(directory: Path, collateral_json: str) -> Path:
    """Write DIR/collateral.json atomically (a reader sees the old or the new bundle, never half of one)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / COLLATERAL_FILE_NAME
    tmp = directory / f".{COLLATERAL_FILE_NAME}.{os.getpid()}.tmp"
    tmp.write_text(collateral_json, encoding="utf-8")
    os.chmod(tmp, 0o644)  # the enclave runs as another user on some hosts; the content is public
    os.replace(tmp, target)
    return target


class CollateralAgent:
    """Fetch, write, and re-fetch before expiry. `fetch` is injectable; by default dcap-qvl against the PCCS."""

    def __init__(
        self,
        *,
        service: CollateralService,
        collateral_dir: Path,
        quote_file: Path,
        refresh_margin_seconds: int = DEFAULT_REFRESH_MARGIN_SECONDS,
        refresh_interval_seconds: float = DEFAULT_REFRESH_INTERVAL_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[bytes], str] | None = None,
    ) -> None:
        try:
            source = PccsCollateralSource(service.url)
        except ValueError as exc:
            raise ConfigError(f"--{service.kind}-url: {exc}") from None
        self.service = service
        self.collateral_dir = collateral_dir
        self.quote_file = quote_file
        self.refresh_margin_seconds = refresh_margin_seconds
        self.refresh_interval_seconds = refresh_interval_seconds
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._fetch = fetch or source.collateral_for

    def refresh(self) -> Refreshed:
        """Fetch the collateral for the platform quote now and write it; raises TeeUnavailable or QuoteFormatError."""
        quote = read_platform_quote(self.quote_file)
        collateral = self._fetch(quote)
        expires_at = collateral_expiry(collateral)
        if expires_at <= self._clock():
            raise TeeUnavailable(
                f"{self.service.describe()} served collateral that expired at {expires_at}: is it up to date?"
            )
        return Refreshed(path=write_collateral(self.collateral_dir, collateral), expires_at=expires_at)

    def run(self, stop: threading.Event, *, report: Callable[[str], None] = log.info) -> None:
        """Refresh until `stop` is set: every `refresh_interval_seconds`, and `refresh_margin_seconds` before each
        expiry if that comes first; `retry_seconds` after a failure.

        A failed refresh leaves the last good bundle in place (it may still be valid for days)."""
        due = 0.0
        last_failure = ""
        while not stop.is_set():
            now = self._clock()
            if now >= due:
                try:
                    done = self.refresh()
                except (TeeUnavailable, QuoteFormatError, ConfigError) as exc:
                    wait = QUOTE_POLL_SECONDS if isinstance(exc, PlatformQuoteMissing) else self.retry_seconds
                    failure = f"collateral not refreshed: {type(exc).__name__}: {exc}"
                    if failure != last_failure:  # say it once, not every poll
                        report(f"{failure}; retrying every {wait:g} s")
                    last_failure = failure
                    due = now + wait
                else:
                    last_failure = ""
                    # never sooner than a retry interval: a PCCS serving nearly-expired bundles must not be hammered
                    due = max(
                        now + self.retry_seconds,
                        min(done.expires_at - self.refresh_margin_seconds, now + self.refresh_interval_seconds),
                    )
                    report(f"wrote {done.path}: expires at {_iso(done.expires_at)}, next refresh at {_iso(due)}")
            stop.wait(min(max(due - self._clock(), 0.0), MAX_SLEEP_SECONDS))


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

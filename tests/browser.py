"""Headless Chromium from the system's packages (Debian: `apt-get install chromium`), for pages the project writes.

    dom = dump_dom(page, tmp_path)                     # the DOM after the page loaded, as Chromium built it
    png = screenshot(page, tmp_path / "page.png")      # what a person would see
    with ConnectionRecorder() as proxy: ...            # every network load the page tries, through a proxy

Chromium runs with a fresh profile and without most of its background services (no sync, no first-run page);
`--proxy-server` sends every request it makes to a local socket that records it and answers nothing, so nothing
leaves the machine. Chromium still asks its own services (network time, component updates, accounts) whatever
the flags: `page_requests()` leaves those out, and a control page with an external image shows it still sees a
page's own loads.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
# Chromium's own services, which it calls at start whatever the page (headless, fresh profile, flags or not).
CHROMIUM_OWN_HOSTS = ("clients2.google.com/time/", "update.googleapis.com", "accounts.google.com")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium from the system's packages (apt-get install chromium)"
)


class ConnectionRecorder:
    """A TCP listener on loopback used as Chromium's proxy: it records each request line and closes."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first = b"(no request line)"
                self.requests.append(first.decode("latin-1"))

    def page_requests(self) -> list[str]:
        """The requests a page made: every recorded one but Chromium's calls to its own services."""
        return [r for r in self.requests if not any(host in r for host in CHROMIUM_OWN_HOSTS)]

    def __enter__(self) -> ConnectionRecorder:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


def _flags(profile: Path, proxy: ConnectionRecorder | None) -> list[str]:
    assert CHROMIUM is not None
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={profile}",
    ]
    if proxy is not None:
        flags += [f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>"]
    return flags


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)


def dump_dom(page: Path, *, proxy: ConnectionRecorder | None = None) -> str:
    """The page's DOM once loaded (Chromium's --dump-dom), with a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return _run([*_flags(Path(profile), proxy), "--dump-dom", page.resolve().as_uri()]).stdout


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2400) -> Path:
    """A PNG of the page as rendered at width x height."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        _run(
            [
                *_flags(Path(profile), None),
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                page.resolve().as_uri(),
            ]
        )
    return out

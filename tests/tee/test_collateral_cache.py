"""Attest must stay cheap under a flood: the node's collateral is read once per refresh, not once per call."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclavefl.errors import TeeUnavailable
from enclavefl.tee.collateral import CachedCollateralSource, FileCollateralSource


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bundle_is_read_once_per_refresh_and_a_new_file_shows_up_after_it(tmp_path: Path) -> None:
    bundle, clock = tmp_path / "collateral.json", Clock()
    bundle.write_text("first")
    cache = CachedCollateralSource(FileCollateralSource(bundle), refresh_seconds=60.0, monotonic=clock)
    assert {cache.collateral_for(b"q") for _ in range(1000)} == {"first"}
    assert cache.reads == 1
    bundle.write_text("second")  # the host agent refreshed it
    clock.now = 59.0
    assert cache.collateral_for(b"q") == "first"
    clock.now = 60.0
    assert cache.collateral_for(b"q") == "second"
    assert cache.reads == 2


def test_a_failed_refresh_keeps_the_previous_bundle_but_a_first_read_must_succeed(tmp_path: Path) -> None:
    bundle, clock = tmp_path / "collateral.json", Clock()
    cache = CachedCollateralSource(FileCollateralSource(bundle), refresh_seconds=1.0, monotonic=clock)
    with pytest.raises(TeeUnavailable, match="host agent"):
        cache.collateral_for(b"q")
    bundle.write_text("first")
    assert cache.collateral_for(b"q") == "first"
    bundle.unlink()
    clock.now = 5.0
    assert cache.collateral_for(b"q") == "first"  # verifiers check its dates; the agent will write it again

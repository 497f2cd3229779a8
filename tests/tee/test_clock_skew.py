"""Clocks that differ by seconds do not break attestation; minutes beyond the tolerance are refused precisely.

Issue dates get ISSUE_DATE_SKEW_SECONDS of tolerance, expiry none. Evidence is real dcap-qvl verification of
the simulated platform's quotes, with collateral dated the way a PCCS fetch "just now" would be.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings

import pytest

from enclavefl.errors import CollateralExpired, CollateralFromTheFuture, QuoteVerificationError
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.insecure._collateral_builder import CollateralWindow, build_collateral_json, collateral_window
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.verify.claims import ISSUE_DATE_SKEW_SECONDS, verify_claims

TOP_OF_HOUR = 1_796_000_400 - 1_796_000_400 % 3600  # a round hour in 2026


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimulatedPlatform:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SimulatedPlatform.create(tmp_path_factory.mktemp("platform"), now=TOP_OF_HOUR - 86400)


def node_evidence(platform: SimulatedPlatform, *, node_clock: float) -> Evidence:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSimulationBackend(platform, clock=lambda: node_clock).evidence(bytes(64))


def with_collateral(evidence: Evidence, platform: SimulatedPlatform, *, issued: int, lifetime: int) -> Evidence:
    start = dt.datetime.fromtimestamp(issued, tz=dt.UTC)
    window = CollateralWindow(issued=start, next_update=start + dt.timedelta(seconds=lifetime))
    collateral = build_collateral_json(platform._hierarchy, fmspc=platform.fmspc, window=window)
    return dataclasses.replace(evidence, collateral_json=collateral)


def verify(evidence: Evidence, platform: SimulatedPlatform, now: int) -> object:
    return verify_claims(evidence, now=now, simulation_root_ca_der=platform.root_ca_der)


def test_owner_seconds_behind_the_node_at_the_top_of_the_hour_verifies(platform: SimulatedPlatform) -> None:
    # The failure of issue 11: the node dated its collateral on the hour by its clock, the owner was behind.
    evidence = node_evidence(platform, node_clock=TOP_OF_HOUR + 0.5)

    assert verify(evidence, platform, TOP_OF_HOUR - 2) is not None


def test_the_simulation_never_dates_collateral_now() -> None:
    for now in (TOP_OF_HOUR, TOP_OF_HOUR + 1, TOP_OF_HOUR + 3599):
        issued = int(collateral_window(now).issued.timestamp())
        assert now - 7200 < issued <= now - 3600


@pytest.mark.parametrize("behind", [1, 3, 60, ISSUE_DATE_SKEW_SECONDS])
def test_fresh_collateral_verifies_for_an_owner_behind_by_up_to_the_tolerance(
    platform: SimulatedPlatform, behind: int
) -> None:
    # Collateral a PCCS issued at the node's "now", the owner's clock `behind` seconds slow.
    evidence = with_collateral(
        node_evidence(platform, node_clock=TOP_OF_HOUR), platform, issued=TOP_OF_HOUR, lifetime=30 * 86400
    )

    assert verify(evidence, platform, TOP_OF_HOUR - behind) is not None


def test_beyond_the_tolerance_the_refusal_says_how_far_and_why(platform: SimulatedPlatform) -> None:
    evidence = with_collateral(
        node_evidence(platform, node_clock=TOP_OF_HOUR), platform, issued=TOP_OF_HOUR, lifetime=30 * 86400
    )
    behind = ISSUE_DATE_SKEW_SECONDS + 1

    with pytest.raises(CollateralFromTheFuture) as caught:
        verify(evidence, platform, TOP_OF_HOUR - behind)

    message = str(caught.value)
    assert f"issued {behind} s after this verifier's clock" in message
    assert f"up to {ISSUE_DATE_SKEW_SECONDS} s" in message and "NTP" in message
    assert "TCBInfo issue date is in the future" in message  # dcap-qvl's own words kept
    assert isinstance(caught.value, QuoteVerificationError)


def test_expiry_gets_no_tolerance(platform: SimulatedPlatform) -> None:
    # Expired one second ago: a verifier that moved its clock back by the skew would accept; we do not.
    issued = TOP_OF_HOUR - 3600
    evidence = with_collateral(node_evidence(platform, node_clock=TOP_OF_HOUR), platform, issued=issued, lifetime=3599)

    with pytest.raises(CollateralExpired):
        verify(evidence, platform, TOP_OF_HOUR)
    assert verify(evidence, platform, TOP_OF_HOUR - 2) is not None  # the same bundle, still valid then


def test_skew_tolerance_checks_expiry_at_the_later_issue_time(platform: SimulatedPlatform) -> None:
    # Issued 3 s in the owner's future, expiring 2 s after that: verified at the issue time, not earlier.
    evidence = with_collateral(
        node_evidence(platform, node_clock=TOP_OF_HOUR), platform, issued=TOP_OF_HOUR, lifetime=2
    )

    assert verify(evidence, platform, TOP_OF_HOUR - 3) is not None
    with pytest.raises(CollateralExpired):
        verify(evidence, platform, TOP_OF_HOUR + 2)

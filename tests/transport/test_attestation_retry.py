"""A refused attestation that time can cure (clock skew, stale collateral) is retried with a message; others
are final at once. Real gRPC over TLS on loopback, a simulated node whose clock runs ahead of the owner's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_pccs import serve_fake_pccs
from transport_harness import CHUNK, Federation, make_federation

from enclavefl.errors import CollateralFromTheFuture, MrEnclaveMismatch, TeeUnavailable
from enclavefl.owner.attested import attest_node
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.insecure._collateral_builder import CollateralWindow, build_collateral_json
from enclavefl.tee.verify.claims import ISSUE_DATE_SKEW_SECONDS
from enclavefl.tee.verify.pccs import PccsCollateralSource
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.grpc_client import NodeClient

pytestmark = pytest.mark.filterwarnings("ignore")


class FreshCollateralTee:
    """The simulated enclave, but its collateral is issued exactly at `issued` (a PCCS fetch "just now")."""

    def __init__(self, inner: Any, issued: int) -> None:
        self._inner = inner
        self._issued = issued

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def evidence(self, report_data: bytes) -> Evidence:
        evidence = self._inner.evidence(report_data)
        start = dt.datetime.fromtimestamp(self._issued, tz=dt.UTC)
        window = CollateralWindow(issued=start, next_update=start + dt.timedelta(days=30))
        platform = self._inner.platform
        collateral = build_collateral_json(platform._hierarchy, fmspc=platform.fmspc, window=window)
        return dataclasses.replace(evidence, collateral_json=collateral)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.current = now
        self.slept: list[float] = []

    def now(self) -> float:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += seconds


@pytest.fixture
def skewed(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> Iterator[tuple[Federation, int]]:
    tee, policy = sim_enclave
    issued = int(time.time()) - int(time.time()) % 3600
    federation = next(make_federation((FreshCollateralTee(tee, issued), policy)))  # type: ignore[arg-type]
    yield federation, issued
    for node in federation.nodes:
        node.stop(0)


def test_an_owner_beyond_the_skew_retries_with_a_message_and_attests_once_within_it(
    skewed: tuple[Federation, int], caplog: pytest.LogCaptureFixture
) -> None:
    federation, issued = skewed
    node = federation.node()
    clock = FakeClock(issued - ISSUE_DATE_SKEW_SECONDS - 5)  # 5 s beyond the tolerance
    client = NodeClient.connect(node.address, chunk_bytes=CHUNK)
    try:
        with caplog.at_level(logging.WARNING, logger="enclavefl.owner.attested"):
            attested = attest_node(
                client,
                job=federation.job,
                policy=federation.policy,
                now=int(clock.now()),
                clock=clock,
                sleep=clock.sleep,
            )
    finally:
        client.close()

    assert attested.verified.mrenclave is not None
    assert clock.slept == [2.0, 5.0]  # refused at -305 s and -303 s, accepted at -298 s
    assert "CollateralFromTheFuture" in caplog.text and "retrying in 2 s (1 of 4)" in caplog.text


def test_a_skew_that_does_not_cure_ends_in_the_precise_error(skewed: tuple[Federation, int]) -> None:
    federation, issued = skewed
    node = federation.node()
    clock = FakeClock(issued - 3600)
    client = NodeClient.connect(node.address, chunk_bytes=CHUNK)
    try:
        with pytest.raises(CollateralFromTheFuture, match=r"issued 3[0-9]{3} s after this verifier's clock"):
            attest_node(
                client,
                job=federation.job,
                policy=federation.policy,
                now=int(clock.now()),
                clock=clock,
                sleep=clock.sleep,
            )
    finally:
        client.close()
    assert clock.slept == [2.0, 5.0, 10.0, 20.0]


def test_a_policy_refusal_is_not_retried(federation: Federation) -> None:
    node = federation.node()
    other = dataclasses.replace(federation.policy, allowed_mrenclaves=frozenset({bytes(32)}))
    clock = FakeClock(time.time())
    client = NodeClient.connect(node.address, chunk_bytes=CHUNK)
    try:
        with pytest.raises(MrEnclaveMismatch):
            attest_node(client, job=federation.job, policy=other, now=int(clock.now()), clock=clock, sleep=clock.sleep)
    finally:
        client.close()
    assert clock.slept == []


def test_an_owner_may_verify_with_collateral_from_its_own_pccs(
    skewed: tuple[Federation, int], platform_collateral: str
) -> None:
    # The node hands out collateral dated beyond the owner's tolerance; the owner's own PCCS has a good bundle.
    federation, issued = skewed
    node = federation.node()
    clock = FakeClock(issued - 3600)
    client = NodeClient.connect(node.address, chunk_bytes=CHUNK)
    try:
        with serve_fake_pccs(platform_collateral) as (pccs, url):
            attested = attest_node(
                client,
                job=federation.job,
                policy=federation.policy,
                now=int(clock.now()),
                clock=clock,
                sleep=clock.sleep,
                collateral=PccsCollateralSource(url),
            )
    finally:
        client.close()

    assert attested.verified.mrenclave is not None
    assert clock.slept == []  # verified at once with the owner's bundle
    assert any("/tcb?fmspc=" in request for request in pccs.requests)


@pytest.fixture
def platform_collateral(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> str:
    tee, _ = sim_enclave
    return tee.evidence(bytes(64)).collateral_json  # type: ignore[no-any-return]


class CollateralLaterTee:
    """The simulated enclave whose host agent writes the collateral only after the first Attest."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def evidence(self, report_data: bytes) -> Evidence:
        self.calls += 1
        if self.calls == 1:
            raise TeeUnavailable("no collateral bundle at collateral.json: is the host agent running?")
        return self._inner.evidence(report_data)  # type: ignore[no-any-return]


def test_a_node_without_collateral_yet_is_retried_until_its_agent_wrote_it(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], caplog: pytest.LogCaptureFixture
) -> None:
    tee, policy = sim_enclave
    late = CollateralLaterTee(tee)
    federation = next(make_federation((late, policy)))  # type: ignore[arg-type]
    node = federation.node()
    clock = FakeClock(time.time())
    client = NodeClient.connect(node.address, chunk_bytes=CHUNK)
    try:
        with caplog.at_level(logging.WARNING, logger="enclavefl.owner.attested"):
            attested = attest_node(
                client, job=federation.job, policy=policy, now=int(clock.now()), clock=clock, sleep=clock.sleep
            )
    finally:
        client.close()
        node.stop(0)

    assert attested.verified.mrenclave is not None
    assert clock.slept == [2.0] and late.calls == 2
    assert "TeeUnavailable" in caplog.text and "host agent" in caplog.text

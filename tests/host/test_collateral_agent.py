"""The host agent fetches the platform's collateral from a PCCS (a stand-in on loopback, through dcap-qvl's real
HTTP client), writes it where the enclave reads it, refreshes it before expiry, and survives a PCCS outage."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import warnings
from pathlib import Path

import pytest
from fake_pccs import serve_fake_pccs
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import ConfigError, QuoteFormatError, TeeUnavailable
from enclavefl.host.collateral_agent import (
    DEFAULT_REFRESH_INTERVAL_SECONDS,
    CollateralAgent,
    CollateralService,
    collateral_expiry,
    collateral_service,
    read_platform_quote,
)
from enclavefl.tee.collateral import PLATFORM_QUOTE_PREFIX, FileCollateralSource
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.insecure._collateral_builder import CollateralWindow, build_collateral_json
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.verify.claims import verify_claims

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()


@pytest.fixture(scope="module")
def platform(simulated_platform_dir: Path) -> SimulatedPlatform:
    # the session's platform: these tests need one platform, not a fresh one (making one costs an RSA-3072 key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SimulatedPlatform.load_or_create(simulated_platform_dir)


@pytest.fixture(scope="module")
def evidence(platform: SimulatedPlatform) -> Evidence:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureSimulationBackend(platform).evidence(bytes(64))


@pytest.fixture
def node_log(tmp_path: Path, evidence: Evidence) -> Path:
    log = tmp_path / "node.log"
    log.write_text(f"node starting\n{PLATFORM_QUOTE_PREFIX}{evidence.quote.hex()}\nnode listening on ...\n")
    return log


def bundle(platform: SimulatedPlatform, *, issued: float, lifetime: float) -> str:
    start = dt.datetime.fromtimestamp(int(issued), tz=dt.UTC)
    window = CollateralWindow(issued=start, next_update=start + dt.timedelta(seconds=lifetime))
    return build_collateral_json(platform._hierarchy, fmspc=platform.fmspc, window=window)


def test_the_agent_fetches_what_the_enclave_hands_out_and_owners_verify(
    tmp_path: Path, node_log: Path, evidence: Evidence, platform: SimulatedPlatform
) -> None:
    with serve_fake_pccs(evidence.collateral_json) as (pccs, url):
        done = CollateralAgent(
            service=CollateralService.pccs(url), collateral_dir=tmp_path / "collateral", quote_file=node_log
        ).refresh()

    assert done.path == tmp_path / "collateral" / "collateral.json"
    assert [r.split("?")[0].rsplit("/", 1)[-1] for r in pccs.requests] == ["pckcrl", "tcb", "identity", "rootcacrl"]
    assert f"fmspc={platform.fmspc.hex().upper()}" in pccs.requests[1]
    # The enclave side: FileCollateralSource reads the agent's file; a data owner verifies quote + that bundle.
    handed_out = FileCollateralSource(done.path).collateral_for(evidence.quote)
    claims = verify_claims(dataclasses.replace(evidence, collateral_json=handed_out), now=int(time.time()),
                           simulation_root_ca_der=platform.root_ca_der)  # fmt: skip
    assert claims.tcb_status == "UpToDate"
    assert done.expires_at == collateral_expiry(evidence.collateral_json) > time.time()


def test_the_agent_refreshes_before_expiry(tmp_path: Path, node_log: Path, platform: SimulatedPlatform) -> None:
    now = time.time()
    first = bundle(platform, issued=now - 3600, lifetime=3600 + 30 * 86400)
    second = bundle(platform, issued=now - 60, lifetime=60 + 30 * 86400)
    margin = 30 * 86400 - 2  # the first bundle is "due" two seconds from now
    reports: list[str] = []
    stop = threading.Event()
    with serve_fake_pccs(first) as (pccs, url):
        agent = CollateralAgent(
            service=CollateralService.pccs(url),
            collateral_dir=tmp_path / "c",
            quote_file=node_log,
            refresh_margin_seconds=margin,
            retry_seconds=0.2,
        )
        runner_thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"report": reports.append})
        runner_thread.start()
        try:
            _wait_for(lambda: len(reports) >= 1)
            assert signed_part(tmp_path / "c" / "collateral.json") == signed_part(first)
            pccs.collateral_json = second  # Intel issued a newer bundle
            _wait_for(lambda: len(reports) >= 2, timeout=10)
        finally:
            stop.set()
            runner_thread.join(10)

    assert signed_part(tmp_path / "c" / "collateral.json") == signed_part(second) != signed_part(first)
    assert all(line.startswith("wrote ") for line in reports[:2]), reports


def test_a_pccs_outage_keeps_the_last_good_bundle_and_is_retried(
    tmp_path: Path, node_log: Path, evidence: Evidence
) -> None:
    reports: list[str] = []
    stop = threading.Event()
    with serve_fake_pccs(evidence.collateral_json) as (pccs, url):
        agent = CollateralAgent(
            service=CollateralService.pccs(url),
            collateral_dir=tmp_path / "c",
            quote_file=node_log,
            retry_seconds=0.2,
            refresh_margin_seconds=40 * 86400,
        )  # always due: refresh each retry
        agent.refresh()
        pccs.fail = True
        before = len(pccs.requests)
        runner_thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"report": reports.append})
        runner_thread.start()
        try:
            _wait_for(lambda: len(pccs.requests) >= before + 3)  # three failed attempts
        finally:
            stop.set()
            runner_thread.join(10)

    assert len(reports) == 1  # said once, retried silently
    assert "collateral not refreshed: TeeUnavailable" in reports[0] and "HTTP 503" in reports[0]
    assert signed_part(tmp_path / "c" / "collateral.json") == signed_part(evidence.collateral_json)


def test_the_agent_refreshes_on_its_interval_although_the_bundle_lives_thirty_days(
    tmp_path: Path, node_log: Path, platform: SimulatedPlatform
) -> None:
    # Owners refuse collateral issued more than 7 days ago (the policy default): the agent must not wait for the
    # 30-day nextUpdate. Its interval (a day by default; here 0.3 s) brings the next fetch.
    now = time.time()
    fresh = bundle(platform, issued=now - 60, lifetime=60 + 30 * 86400)
    reports: list[str] = []
    stop = threading.Event()
    with serve_fake_pccs(fresh) as (_, url):
        agent = CollateralAgent(
            service=CollateralService.pccs(url),
            collateral_dir=tmp_path / "c",
            quote_file=node_log,
            refresh_interval_seconds=0.3,
            retry_seconds=0.05,
        )
        runner_thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"report": reports.append})
        runner_thread.start()
        try:
            _wait_for(lambda: len(reports) >= 3, timeout=10)
        finally:
            stop.set()
            runner_thread.join(10)

    assert all(line.startswith("wrote ") for line in reports[:3]), reports
    assert DEFAULT_REFRESH_INTERVAL_SECONDS == 86400


@pytest.mark.parametrize("suffix", ["", "sgx/certification/v4/"])
def test_a_provider_cache_url_with_or_without_the_api_path_is_fetched_from(
    tmp_path: Path, node_log: Path, evidence: Evidence, suffix: str
) -> None:
    with serve_fake_pccs(evidence.collateral_json) as (pccs, url):
        done = CollateralAgent(
            service=CollateralService.cache(url + suffix), collateral_dir=tmp_path / "c", quote_file=node_log
        ).refresh()

    assert signed_part(done.path) == signed_part(evidence.collateral_json)
    assert all(r.startswith("/sgx/certification/v4/") for r in pccs.requests)


def test_intel_pcs_is_intels_own_service_and_exactly_one_service_is_named() -> None:
    assert collateral_service(intel_pcs=True, pccs_url=None, cache_url=None) == CollateralService(
        kind="intel-pcs", url="https://api.trustedservices.intel.com"
    )
    for named in (
        {"intel_pcs": False, "pccs_url": None, "cache_url": None},
        {"intel_pcs": True, "pccs_url": "https://pccs:8081/", "cache_url": None},
    ):
        with pytest.raises(ConfigError, match="name one collateral service"):
            collateral_service(**named)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="an http"):
        CollateralService.cache("global.acccache.azure.net")


def test_without_a_platform_quote_yet_the_agent_says_so(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("node starting\n")

    with pytest.raises(TeeUnavailable, match="no platform quote yet"):
        read_platform_quote(log)
    with pytest.raises(TeeUnavailable, match="start the node first"):
        read_platform_quote(tmp_path / "absent.log")


def test_platform_quote_from_a_log_or_a_raw_file(tmp_path: Path, node_log: Path, evidence: Evidence) -> None:
    raw = tmp_path / "quote.bin"
    raw.write_bytes(evidence.quote)
    bad = tmp_path / "bad.log"
    bad.write_text(f"{PLATFORM_QUOTE_PREFIX}zz\n")

    assert read_platform_quote(node_log) == evidence.quote == read_platform_quote(raw)
    with pytest.raises(QuoteFormatError):
        read_platform_quote(bad)


def test_cli_agent_once_writes_and_reports_failures(tmp_path: Path, node_log: Path, evidence: Evidence) -> None:
    with serve_fake_pccs(evidence.collateral_json) as (pccs, url):
        args = ["node", "agent", "--pccs-url", url, "--collateral-dir", str(tmp_path / "c"), "--quote", str(node_log)]
        written = runner.invoke(app, [*args, "--once"])
        pccs.fail = True
        refused = runner.invoke(app, [*args, "--once"])

    assert written.exit_code == 0, written.output
    assert signed_part(tmp_path / "c" / "collateral.json") == signed_part(evidence.collateral_json)
    assert refused.exit_code == ExitCode.REFUSED and "HTTP 503" in refused.output  # the PCCS refused


def signed_part(source: Path | str) -> tuple[str, str]:
    """The Intel-signed TCB info and QE identity of a bundle (dcap-qvl re-serialises the JSON around them)."""
    text = source.read_text() if isinstance(source, Path) else source
    outer = json.loads(text)
    return outer["tcb_info"], outer["qe_identity"]


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)

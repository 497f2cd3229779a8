"""The host's restart loop and log shipping: a crashed node is restarted, a finished one is not, its output
lands in the log the collateral agent reads, and the agent with --run-node fetches collateral for the quote
the node printed. Real processes."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_pccs import serve_fake_pccs
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.host.supervisor import NodeSupervisor
from enclavefl.tee.collateral import PLATFORM_QUOTE_PREFIX
from enclavefl.tee.evidence import Evidence
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform

runner = CliRunner()


def fake_node(
    tmp_path: Path, *, quote_hex: str, crashes: int, hold_seconds: float = 0.0, hold_until: Path | None = None
) -> Path:
    """An executable standing in for run.sh: prints its platform quote, crashes `crashes` times, then finishes.

    It runs for `hold_seconds`, or until `hold_until` exists (at most 60 s): a test that needs the node alive while
    something happens waits for that thing, not for a guess at how long it takes on a loaded machine."""
    script = tmp_path / "run.sh"
    counter = tmp_path / "starts"
    hold = (
        f"time.sleep({hold_seconds})\n"
        if hold_until is None
        else f"deadline = time.monotonic() + 60\n"
        f"while not pathlib.Path({str(hold_until)!r}).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
    )
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys, time\n"
        f"counter = pathlib.Path({str(counter)!r})\n"
        "starts = int(counter.read_text()) + 1 if counter.exists() else 1\n"
        "counter.write_text(str(starts))\n"
        f"print('{PLATFORM_QUOTE_PREFIX}{quote_hex}', flush=True)\n"
        "print(f'node start {starts}', file=sys.stderr, flush=True)\n"
        f"{hold}"
        f"sys.exit(1 if starts <= {crashes} else 0)\n"
    )
    script.chmod(0o755)
    return script


def test_a_crashed_node_is_restarted_and_a_finished_one_is_not(tmp_path: Path) -> None:
    script = fake_node(tmp_path, quote_hex="00", crashes=2)
    reports: list[str] = []
    supervisor = NodeSupervisor(
        command=[str(script)], log_path=tmp_path / "logs" / "node.log", report=reports.append, first_delay=0.05
    )

    status = supervisor.run(threading.Event())

    assert status == 0
    assert supervisor.exit_codes == [1, 1, 0]
    log = (tmp_path / "logs" / "node.log").read_text()
    assert [line for line in log.splitlines() if line.startswith("node start")] == [
        "node start 1",
        "node start 2",
        "node start 3",
    ]
    assert reports == [
        "node exited with status 1; restarting in 0.05 s",
        "node exited with status 1; restarting in 0.1 s",
    ]


def test_stop_terminates_the_node_and_does_not_restart_it(tmp_path: Path) -> None:
    script = fake_node(tmp_path, quote_hex="00", crashes=0, hold_seconds=60)
    stop = threading.Event()
    supervisor = NodeSupervisor(command=[str(script)], log_path=tmp_path / "node.log", first_delay=0.05)
    # stop once the node has started (it counts its starts in a file), not after a guessed delay
    threading.Thread(target=_set_when, args=(stop, lambda: (tmp_path / "starts").exists()), daemon=True).start()

    started = time.monotonic()
    status = supervisor.run(stop)

    assert time.monotonic() - started < 30
    assert status != 0 and supervisor.exit_codes == [status]  # terminated, not restarted


@pytest.fixture(scope="module")
def evidence(simulated_platform_dir: Path) -> Evidence:
    # the session's platform: any platform's quote will do, and making one costs an RSA-3072 key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        platform = SimulatedPlatform.load_or_create(simulated_platform_dir)
        return InsecureSimulationBackend(platform).evidence(bytes(64))


def test_agent_with_run_node_fetches_collateral_for_the_quote_the_node_printed(
    tmp_path: Path, evidence: Evidence
) -> None:
    collateral = tmp_path / "collateral" / "collateral.json"
    # the node runs until the agent has written the collateral for its quote (the agent works while the node runs)
    script = fake_node(tmp_path, quote_hex=evidence.quote.hex(), crashes=0, hold_until=collateral)
    with serve_fake_pccs(evidence.collateral_json) as (pccs, url):
        result = runner.invoke(
            app,
            [
                "node",
                "agent",
                "--pccs-url",
                url,
                "--collateral-dir",
                str(collateral.parent),
                "--run-node",
                str(script),
                "--log",
                str(tmp_path / "node.log"),
            ],
        )

    assert result.exit_code == 0, result.output
    assert collateral.is_file()
    assert any("/tcb?fmspc=" in request for request in pccs.requests)
    assert "node exited with status 0" in result.output


def test_agent_needs_a_quote_source(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["node", "agent", "--pccs-url", "https://pccs.example/", "--collateral-dir", str(tmp_path)]
    )

    assert result.exit_code == 2
    assert "--run-node" in result.output


def _set_when(event: threading.Event, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    event.set()

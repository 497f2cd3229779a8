"""`enclavefl job report` in a real headless Chromium: the page renders, its figures are the job file's and the
job's, and it loads nothing from anywhere (offline, no external resource).

A networked job runs first (a node on loopback, two owners, the model owner watching with its own evaluation and
downloading the verified model), so the page shows a real receipt chain, real round records and the node's
decoded evidence. Set ENCLAVEFL_REPORT_SCREENSHOT=path.png to keep the screenshot the test takes.
"""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import ConnectionRecorder, dump_dom, needs_chromium, screenshot
from node_harness import Workspace, in_threads, workspace
from safetensors.numpy import save_file
from test_job_watch import SEED_TASK, X, Y, expected_sse, gated_owner, mo_args, recorded_rounds
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.owner.metrics_history import read_history
from enclavefl.tee.insecure.measurement import measure_aggregator_code

pytestmark = [pytest.mark.slow, needs_chromium, pytest.mark.filterwarnings("ignore")]
runner = CliRunner()
__all__ = ["workspace"]


class Page(HTMLParser):
    """What the report shows, by its stable keys: rows per section, round cells, chain cells, chart series."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.chain: dict[int, dict[str, str]] = {}
        self.rounds: dict[int, dict[str, str]] = {}
        self.series: dict[str, str] = {}
        self.ids: set[str] = set()
        self.loads: list[str] = []
        self._section = ""
        self._table = ""
        self._row: tuple[str, str | int] | None = None
        self._cell: str | None = None
        self._text: list[str] = []
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        for attr in ("src", "href", "srcset", "data", "poster"):
            if attr in a:
                self.loads.append(f"{tag} {attr}={a[attr]}")
        if tag == "section" and a.get("id", "").startswith("s-"):
            self._section = a["id"][2:]
        if tag == "table":
            self._table = a.get("id", "")
        if tag == "tr" and "data-key" in a:
            self._row = ("consent", a["data-key"])
        elif tag == "tr" and "data-round" in a:
            self._row = (self._table, int(a["data-round"]))
        if tag == "td" and self._row is not None:
            if self._row[0] == "consent" and a.get("class") == "value":
                self._cell = "value"
            elif "data-key" in a:
                self._cell = a["data-key"]
            self._text = []
        if tag == "polyline" and "data-series" in a:
            self.series[a["data-series"]] = a["data-points"]

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            kind, key = self._row
            text = "".join(self._text).strip()
            if kind == "consent":
                self.rows.setdefault(self._section, {})[str(key)] = text
            elif kind == "chain":
                self.chain.setdefault(int(key), {})[self._cell] = text
            elif kind == "rounds":
                self.rounds.setdefault(int(key), {})[self._cell] = text
            self._cell = None
        if tag == "tr":
            self._row = None


def run_and_download(ws: Workspace) -> tuple[Path, Path]:
    """A finished networked job: (the model owner's round records, the downloaded receipts file)."""
    data = ws.directory / "test.safetensors"
    save_file({"x": X, "y": Y}, str(data))
    record = ws.directory / "rounds.jsonl"
    node = ws.node()
    try:
        ready = recorded_rounds(record)
        owners = (("alice", 1.0), ("bob", 3.0))
        threads = list(in_threads(*(gated_owner(ws, node.address, n, v, ready) for n, v in owners)))
        args = mo_args(ws, node.address)
        submitted = runner.invoke(app, ["job", "submit", *args, "--model", str(ws.model_file)])
        assert submitted.exit_code == 0, submitted.output
        evaluate = ["--evaluate", SEED_TASK, "--eval-data", str(data)]
        watched = runner.invoke(app, ["job", "watch", *args, "--record", str(record), *evaluate])
        assert watched.exit_code == 0, watched.output
        out = ws.directory / "final.safetensors"
        downloaded = runner.invoke(app, ["job", "download", *args, "--out", str(out)])
        assert downloaded.exit_code == 0, downloaded.output
        for thread in threads:
            thread.join(20)
    finally:
        node.stop(0)
    return record, out.with_suffix(".receipts.json")


def test_the_report_renders_in_chromium_with_the_jobs_figures_and_loads_nothing(workspace: Workspace) -> None:
    records, receipts = run_and_download(workspace)
    page = workspace.directory / "report.html"
    inputs = ["--job", str(workspace.job_file), "--metrics", str(records), "--receipts", str(receipts)]
    written = runner.invoke(app, ["job", "report", *inputs, "--policy", str(workspace.policy_file), "--out", str(page)])
    assert written.exit_code == 0, written.output

    with ConnectionRecorder() as proxy:
        dom = dump_dom(page, proxy=proxy)
    shot = screenshot(page, workspace.directory / "report.png")
    if keep := os.environ.get("ENCLAVEFL_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, keep)
    shown = Page(dom)
    job = workspace.job

    assert proxy.page_requests() == []  # nothing fetched: the page reads the same offline
    assert shown.loads == []  # and nothing to fetch: no src, href or srcset anywhere
    assert shown.rows["job"]["digest"] == job.digest().hex()
    assert shown.rows["job"]["rounds"] == str(job.rounds)
    assert shown.rows["job"]["min_contributions"] == str(job.min_contributions)
    assert shown.rows["job"]["enrolled"] == str(len(job.data_owners))
    assert shown.rows["aggregation"]["strategy"] == job.strategy.name
    assert shown.rows["dp"]["enabled"] == ("yes" if job.dp is not None else "no")
    assert shown.rows["evidence"]["mrenclave"] == measure_aggregator_code().hex()
    assert shown.rows["evidence"]["job_digest"].startswith(job.digest().hex())
    assert "insecure" in shown.ids  # a simulated node's evidence is flagged on the page itself
    assert sorted(shown.chain) == [1, 2]
    assert [shown.chain[r]["contributions"] for r in (1, 2)] == ["2", "2"]
    history = read_history(records)
    assert [r.round for r in history] == [1, 2]
    for r in history:  # the model owner's evaluation of the released model: the mean of (1 + r, 3 + r)
        assert r.central["loss"] == pytest.approx(expected_sse(2.0 + r.round), rel=1e-6)
        assert float(shown.rounds[r.round]["central/loss"]) == pytest.approx(r.central["loss"], rel=1e-5)
    points = [p.split(":") for p in shown.series["central/loss"].split()]
    assert [(int(x), float(y)) for x, y in points] == [
        (r.round, pytest.approx(r.central["loss"], rel=1e-5)) for r in history
    ]
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_offline_check_sees_a_page_that_loads_something(tmp_path: Path) -> None:
    """The control: the same check on a page with an external image records the load and finds the src."""
    page = tmp_path / "control.html"
    page.write_text('<!doctype html><html><body><img src="http://example.invalid/pixel.png"></body></html>')

    with ConnectionRecorder() as proxy:
        dom = dump_dom(page, proxy=proxy)

    assert any("example.invalid" in r for r in proxy.page_requests())
    assert Page(dom).loads == ["img src=http://example.invalid/pixel.png"]


def test_the_report_without_records_or_receipts_says_where_they_come_from(workspace: Workspace) -> None:
    page = workspace.directory / "consent.html"
    written = runner.invoke(app, ["job", "report", "--job", str(workspace.job_file), "--out", str(page)])
    assert written.exit_code == 0, written.output

    dom = dump_dom(page)
    shown = Page(dom)

    assert shown.rows["job"]["rounds"] == str(workspace.job.rounds)
    assert shown.chain == {} and shown.rounds == {}
    assert "evidence" not in shown.rows
    assert shown.rows["job"]["max_round_attempts"] == str(workspace.job.max_round_attempts)
    assert "no round records given" in dom and "no receipts file given" in dom

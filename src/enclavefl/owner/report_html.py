"""One self-contained HTML page per job: the consent summary, the curves, the receipt chain, the decoded evidence.

    page = JobReport(summary=consent_summary(job, ...), history=read_history(path), receipts=chain)
    Path("report.html").write_text(render_report(page))           # `enclavefl job report`

The page loads nothing: no script, no font, no image file, no link. Its Content-Security-Policy (`default-src
'none'`) makes a browser refuse any load that a later change might add, so it reads the same offline, on an
air-gapped machine, or attached to an e-mail. Curves are inline SVG (owner/report_svg.py); every table cell
carries the stable key of the figure it shows (`data-key`), so tests compare the page with the job file.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from enclavefl.core.receipts import RoundReceipt
from enclavefl.owner.consent import ConsentSummary
from enclavefl.owner.consent_rows import ConsentSection
from enclavefl.owner.metrics_history import RoundRecord, series
from enclavefl.owner.report_svg import line_chart

CONTENT_SECURITY_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .4em 0 1em; } th, td { text-align: left; padding: 3px 10px 3px 0;
vertical-align: top; } th { font-weight: 600; white-space: nowrap; color: #444; }
td.value { font-family: ui-monospace, monospace; word-break: break-all; }
.note { color: #666; font-style: italic; margin: .2em 0; } .ok { color: #1a7f37; } .refused { color: #c62828;
font-weight: 700; } .banner { background: #c62828; color: #fff; padding: .6em 1em; font-weight: 700; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } svg.chart { border: 1px solid #eee; background: #fff; }
.chart-title { font-weight: 600; font-size: 13px; } .tick, .legend, .axis { font-size: 11px; fill: #444; }
table.chain td, table.rounds td { font-family: ui-monospace, monospace; font-size: 12px; }
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEntry:
    receipt: RoundReceipt
    sha256: str  # the signed receipt body's SHA-256: what the next receipt names as previous


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReport:
    summary: ConsentSummary
    history: tuple[RoundRecord, ...] = ()
    chain: tuple[ChainEntry, ...] = ()
    chain_source: str = ""  # where the verified chain came from ("" when none was given)
    generated_at: int = 0  # unix seconds; 0: now

    @property
    def insecure(self) -> bool:
        try:
            return "INSECURE" in self.summary.value("evidence", "tee")
        except KeyError:
            return False


def render_report(report: JobReport) -> str:
    """The whole page as text."""
    s = report.summary
    when = datetime.datetime.fromtimestamp(
        report.generated_at or datetime.datetime.now(tz=datetime.UTC).timestamp(), tz=datetime.UTC
    ).strftime("%Y-%m-%d %H:%M UTC")
    banner = (
        '<p class="banner" id="insecure">INSECURE: the enclave evidence is SIMULATED. It proves the protocol, '
        "not confidentiality.</p>"
        if report.insecure
        else ""
    )
    body = [
        f"<h1>Job {escape(s.job_name)}</h1>",
        f'<p>job digest <code id="job-digest">{s.job_digest}</code> &middot; report written {when}</p>',
        banner,
        "<h2>What the job commits to</h2>",
        *(_section(section) for section in s.sections if section.key != "evidence"),
        _curves(report),
        _chain(report),
        _evidence(s),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>enclavefl job report: {escape(s.job_name)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


def _section(section: ConsentSection) -> str:
    rows = "".join(
        f'<tr data-key="{escape(row.key)}"><th>{escape(row.label)}</th><td class="value">{escape(row.value)}</td>'
        + (f'<td class="{row.verdict}">{"ok" if row.verdict == "ok" else "REFUSED"}</td>' if row.verdict else "")
        + "</tr>"
        for row in section.rows
    )
    note = f'<p class="note">{escape(section.note)}</p>' if section.note else ""
    table = f"<table>{rows}</table>" if rows else ""
    return f'<section id="s-{escape(section.key)}"><h3>{escape(section.title)}</h3>{note}{table}</section>'


def _curves(report: JobReport) -> str:
    found = series(report.history)
    losses = {k: v for k, v in found.items() if "loss" in k}
    others = {k: v for k, v in found.items() if "loss" not in k}
    charts = [line_chart("Loss", losses, y_label="loss")] if losses or not others else []
    if others:
        charts.append(line_chart("Other metrics", others))
    counts = {"contributions": [(r.round, float(r.contributions)) for r in report.history]}
    if not report.history and report.chain:
        counts = {"contributions": [(e.receipt.round, float(e.receipt.contributions)) for e in report.chain]}
    charts.append(line_chart("Contributions per round", counts, y_label="updates"))
    epsilon = [(e.receipt.round, e.receipt.cumulative_epsilon) for e in report.chain]
    spent = {"cumulative epsilon": [(r, float(e)) for r, e in epsilon if e is not None]}
    if spent["cumulative epsilon"]:
        charts.append(line_chart("Privacy spent (signed receipts)", spent, y_label="epsilon"))
    note = (
        "from the model owner's round records (`job watch --json`)"
        if report.history
        else "no round records given (`job report --metrics FILE`, written by `job watch --json`)"
    )
    return (
        f'<h2>Curves</h2><p class="note">{note}</p><div class="grid" id="curves">{"".join(charts)}</div>'
        + _rounds_table(report.history)
    )


def _rounds_table(history: Sequence[RoundRecord]) -> str:
    if not history:
        return ""
    names = sorted({name for record in history for name in record.metrics()})
    head = "".join(f"<th>{escape(n)}</th>" for n in ["round", "contributions", *names])
    rows = []
    for record in history:
        values = record.metrics()
        cells = "".join(
            f'<td data-key="{escape(n)}">{values[n]:.6g}</td>' if n in values else "<td></td>" for n in names
        )
        rows.append(
            f'<tr data-round="{record.round}"><td>{record.round}</td><td>{record.contributions}</td>{cells}</tr>'
        )
    return f'<table class="rounds" id="rounds"><tr>{head}</tr>{"".join(rows)}</table>'


def _chain(report: JobReport) -> str:
    if not report.chain:
        return (
            '<h2>Receipt chain</h2><p class="note">no receipts file given (`job report --receipts '
            "model.receipts.json --policy policy.toml`)</p>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("round", "contributions", "updates committed", "global model", "epsilon", "receipt")
    )
    rows = []
    for entry in report.chain:
        r = entry.receipt
        epsilon = f"{r.cumulative_epsilon:.4g}" if r.cumulative_epsilon is not None else "-"
        rows.append(
            f'<tr data-round="{r.round}"><td>{r.round}</td><td data-key="contributions">{r.contributions}</td>'
            f"<td>{len(r.update_commitments)}</td><td>{r.global_model_sha256.hex()}</td>"
            f'<td data-key="epsilon">{epsilon}</td><td>{entry.sha256}</td></tr>'
        )
    note = (
        f"{len(report.chain)} receipts from {escape(report.chain_source)}, each signed by the attested key and "
        "naming the one before it; verified before this page was written"
    )
    table = f'<table class="chain" id="chain"><tr>{head}</tr>{"".join(rows)}</table>'
    return f'<h2>Receipt chain</h2><p class="note">{note}</p>{table}'


def _evidence(summary: ConsentSummary) -> str:
    try:
        section = summary.section("evidence")
    except KeyError:
        return (
            '<h2>Attested enclave</h2><p class="note">not attested yet (`job report --node HOST:PORT --policy '
            "policy.toml`, or --receipts with the evidence the model owner verified)</p>"
        )
    return "<h2>Attested enclave</h2>" + _section(section)

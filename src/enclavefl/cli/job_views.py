"""`enclavefl job inspect` and `job report`: what a job commits to, as text or as one offline HTML page.

Registered on the `job` group by cli/job.py; torch-free, like every `job` command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from enclavefl.core.exit_codes import ExitCode, exit_status_help
from enclavefl.errors import AttestationError, ConfigError, EnclaveFLError

T = TypeVar("T")
INSPECT_EXIT_CODES = (ExitCode.ATTESTATION_REFUSED, ExitCode.REFUSED, ExitCode.SITE_POLICY_REFUSED)
REPORT_EXIT_CODES = (ExitCode.ATTESTATION_REFUSED, ExitCode.REFUSED)

JobOpt = Annotated[Path, typer.Option("--job", help="The job spec (TOML) you were handed.")]
SiteOpt = Annotated[
    Path | None,
    typer.Option("--site-policy", help="Your own limits (TOML, `data-owner site-policy init`): shown field by field."),
]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state", help="Your state directory: your lifetime privacy ledger before and after this job."),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Your attestation policy (TOML): the enclave's evidence is shown once it passes."),
]
NodeOpt = Annotated[
    str | None,
    typer.Option(
        "--node", help="HOST:PORT: attest the node (a fresh nonce is all that is sent) and show its evidence."
    ),
]
ReceiptsOpt = Annotated[
    Path | None,
    typer.Option(
        "--receipts",
        help="A receipts file (`job download` writes model.receipts.json): its verified chain and the evidence "
        "the model owner verified.",
    ),
]
PccsOpt = Annotated[
    str | None, typer.Option("--pccs-url", help="Verify the node's quote with collateral from this PCCS.")
]


def inspect(
    job: JobOpt,
    site_policy: SiteOpt = None,
    state: StateOpt = None,
    policy: PolicyOpt = None,
    node: NodeOpt = None,
    receipts: ReceiptsOpt = None,
    pccs_url: PccsOpt = None,
) -> None:
    """Show, in one screen, what a job commits to before you join it.

    K, rounds, attempts, the aggregation rule and its parameters, differential privacy (epsilon and delta per
    round and in total, clipping, accountant), masked mode, local training, the model (schema digest, parameters,
    bytes), the model owner and every data owner by certificate fingerprint. With --site-policy, each of your
    limits beside the job's value; with --state, your lifetime privacy ledger before and after this job. With
    --policy and --node (or --receipts), the enclave's decoded evidence once it verified: MRENCLAVE and MRSIGNER
    (or MRTD and RTMRs), SVNs, TCB status and advisories, the debug flag, and what its report data binds.
    Exits 5 when your site policy or ledger would refuse the job.
    """
    from enclavefl.api.inspection import inspect_job, summary_lines

    _warn_policy(policy)
    summary = _run(
        lambda: inspect_job(
            job,
            site_policy=site_policy,
            state_dir=state,
            policy=policy,
            node=node,
            receipts=receipts,
            pccs_url=pccs_url,
        )
    )
    for line in summary_lines(summary):
        typer.echo(line)
    refused = [
        row.key
        for s in summary.sections
        if s.key in ("site_policy", "ledger")
        for row in s.rows
        if row.verdict == "refused" and row.key != "verdict"
    ]
    if refused:
        typer.echo(f"your own limits refuse this job ({', '.join(refused)}): `data-owner run` would send nothing")
        raise typer.Exit(ExitCode.SITE_POLICY_REFUSED)


def report(
    job: JobOpt,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (one self-contained file).")] = Path(
        "report.html"
    ),
    metrics: Annotated[
        Path | None,
        typer.Option("--metrics", help="Round records (JSON lines) from `job watch --json`: the curves."),
    ] = None,
    receipts: ReceiptsOpt = None,
    policy: PolicyOpt = None,
    node: NodeOpt = None,
    site_policy: SiteOpt = None,
    state: StateOpt = None,
    pccs_url: PccsOpt = None,
) -> None:
    """Write one self-contained HTML page: the consent summary, the curves, the receipt chain, the decoded evidence.

    The page loads nothing (no script, font, image file or link; its Content-Security-Policy forbids every load),
    so it reads the same offline. Curves come from --metrics (`job watch --json > rounds.jsonl`); the receipt chain
    and the evidence from --receipts (verified against --policy first), or the evidence from attesting --node.
    """
    from enclavefl.api.inspection import job_report, write_job_report

    _warn_policy(policy)
    page = _run(
        lambda: job_report(
            job,
            metrics=metrics,
            receipts=receipts,
            policy=policy,
            node=node,
            site_policy=site_policy,
            state_dir=state,
            pccs_url=pccs_url,
        )
    )
    written = _run(lambda: write_job_report(page, out))
    what = [f"{len(page.summary.sections)} sections", f"{len(page.history)} round records"]
    what.append(f"{len(page.chain)} verified receipts" if page.chain else "no receipts")
    typer.echo(f"wrote {written} ({', '.join(what)}); open it in any browser, offline")


def _warn_policy(policy: Path | None) -> None:
    if policy is None:
        return
    import warnings

    from enclavefl.owner.notices import policy_warning
    from enclavefl.tee.verify.policy_file import load_policy

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load_policy(policy)
    except EnclaveFLError:
        return  # reported with its exit status by the command itself
    warning = policy_warning("inspect", loaded)
    if warning is not None:
        typer.echo(warning, err=True)


def _run(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (ConfigError, ValueError, OSError) as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except AttestationError as exc:
        typer.echo(f"attestation refused: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.ATTESTATION_REFUSED) from exc
    except EnclaveFLError as exc:
        typer.echo(f"refused: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from exc


inspect_epilog = exit_status_help(*INSPECT_EXIT_CODES)
report_epilog = exit_status_help(*REPORT_EXIT_CODES)

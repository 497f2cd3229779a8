"""The consent summary's own-limits part: the site policy field by field, and the lifetime ledger before and after.

    site_policy_section(job, site, attestation)   # one row per limit: the job's value, the limit, ok or REFUSED
    ledger_section(job, site, Path("state"))      # lifetime epsilon before and after joining this job

The verdict of the whole policy is the site policy's own check (`SitePolicy.check_job`), the one `data-owner
run` applies; the rows show each limit next to the job's value so that a person sees all of them at once.
"""

from __future__ import annotations

from pathlib import Path

from enclavefl.core.job import JobSpec
from enclavefl.errors import EnclaveFLError, SitePolicyRefused
from enclavefl.owner.consent_rows import ConsentRow, ConsentSection, Verdict
from enclavefl.owner.site_limits import certificate_fingerprint
from enclavefl.owner.site_policy import SitePolicy, job_epsilon
from enclavefl.privacy.params import DpParams
from enclavefl.tee.verify.policy import AttestationPolicy


def _limit_row(key: str, job_value: str, limit: str, holds: bool) -> ConsentRow:
    verdict: Verdict = "ok" if holds else "refused"
    return ConsentRow(key=key, label=key, value=f"job {job_value}; limit {limit}", verdict=verdict)


def _at_most(key: str, value: float | None, limit: float | None, what: str) -> ConsentRow | None:
    if limit is None:
        return None
    shown = "-" if value is None else f"{value:g}"
    return _limit_row(key, f"{what} {shown}", f"at most {limit:g}", value is None or value <= limit)


def site_policy_rows(job: JobSpec, site: SitePolicy, attestation: AttestationPolicy | None) -> list[ConsentRow]:
    """Each limit of `site` beside the job's value (a limit left out of the policy is no row)."""
    rows: list[ConsentRow] = []
    if attestation is not None:
        simulated = attestation.simulation_allowed
        rows.append(
            _limit_row(
                "allow_simulated_enclave",
                "attestation policy accepts a SIMULATED enclave" if simulated else "attestation policy: real enclaves",
                "simulated allowed" if site.allow_simulated_enclave else "real enclaves only",
                site.allow_simulated_enclave or not simulated,
            )
        )
    rows.append(
        _limit_row(
            "min_contributions",
            f"K = {job.min_contributions}",
            f"K >= {site.min_contributions}",
            job.min_contributions >= site.min_contributions,
        )
    )
    dp = DpParams.from_mapping(job.dp) if job.dp is not None else None
    needs_dp = site.require_dp or site.lifetime_epsilon is not None
    rows.append(
        _limit_row(
            "require_dp",
            "central DP" if dp is not None else "no DP",
            "DP required" if needs_dp else "DP optional",
            dp is not None or not needs_dp,
        )
    )
    if dp is not None:
        allowed = ", ".join(sorted(site.accountants))
        rows.append(_limit_row("accountants", dp.accountant, allowed, dp.accountant in site.accountants))
        rows += [r for r in (_at_most("max_delta", dp.delta, site.max_delta, "delta"),) if r is not None]
        epsilon = _at_most("max_epsilon", job_epsilon(dp), site.max_epsilon, "epsilon")
        rows += [epsilon] if epsilon is not None else []
    if site.strategies:
        allowed = ", ".join(sorted(site.strategies))
        rows.append(_limit_row("strategies", job.strategy.name, allowed, job.strategy.name in site.strategies))
    nbytes = job.model_schema.nbytes if job.model_schema is not None else None
    for found in (
        _at_most("max_rounds", job.rounds, site.max_rounds, "rounds"),
        _at_most("max_local_steps", job.train.local_steps, site.max_local_steps, "steps"),
        _at_most("max_local_epochs", job.train.local_epochs, site.max_local_epochs, "epochs"),
        _at_most("max_model_bytes", nbytes, site.max_model_bytes, "bytes"),
    ):
        if found is not None:
            rows.append(found)
    if site.model_owners:
        fingerprint = certificate_fingerprint(job.model_owner_certificate_pem) or "none"
        rows.append(
            _limit_row("model_owners", f"sha256:{fingerprint[:16]}…", "listed", fingerprint in site.model_owners)
        )
    return rows


def site_policy_section(job: JobSpec, site: SitePolicy | None, attestation: AttestationPolicy | None) -> ConsentSection:
    if site is None:
        return ConsentSection(
            key="site_policy",
            title="Your site policy",
            rows=(),
            note="none given; --site-policy FILE checks the job against your own limits",
        )
    try:
        site.check_job(job, attestation or AttestationPolicy.strict())
    except SitePolicyRefused as exc:
        verdict = ConsentRow(key="verdict", label="verdict", value=f"REFUSED: {exc}", verdict="refused")
    else:
        verdict = ConsentRow(key="verdict", label="verdict", value="the job is within every limit", verdict="ok")
    return ConsentSection(
        key="site_policy",
        title="Your site policy",
        rows=(*site_policy_rows(job, site, attestation), verdict),
        note=f"{site.source}: checked by `data-owner run --site-policy` before anything is sent",
    )


def ledger_section(job: JobSpec, site: SitePolicy | None, ledger_dir: Path | None) -> ConsentSection:
    """Lifetime epsilon before and after this job; read only (a missing ledger directory is not created)."""
    from enclavefl.owner.ledger import LEDGER_FILE, PrivacyLedger

    title = "Your privacy ledger"
    if ledger_dir is None:
        return ConsentSection(key="ledger", title=title, rows=(), note="none given; --state DIR reads your ledger")
    if not (ledger_dir / LEDGER_FILE).is_file():
        return ConsentSection(key="ledger", title=title, rows=(), note=f"{ledger_dir} holds no privacy ledger yet")
    chosen = site or SitePolicy()
    try:
        ledger = PrivacyLedger.open(ledger_dir)
        before = ledger.spent(chosen)
        charged = job.digest().hex() in {j.digest for j in ledger.jobs}
        after = before if charged or job.dp is None else ledger.spent(chosen, extra=job)
    except EnclaveFLError as exc:
        return ConsentSection(key="ledger", title=title, rows=(), note=f"unreadable: {type(exc).__name__}: {exc}")
    budget = chosen.lifetime_epsilon
    rows = [
        ConsentRow(key="jobs", label="jobs charged so far", value=str(len(ledger.jobs))),
        ConsentRow(key="before", label="lifetime epsilon before this job", value=f"{before:.4g}"),
        ConsentRow(
            key="after",
            label="lifetime epsilon after this job",
            value=f"{after:.4g}" if job.dp is not None else "unbounded (the job has no DP)",
        ),
        ConsentRow(key="delta", label="at delta", value=f"{chosen.lifetime_delta:g}"),
    ]
    if budget is not None:
        holds = job.dp is not None and after <= budget
        rows.append(
            ConsentRow(
                key="lifetime_epsilon",
                label="lifetime budget",
                value=f"{budget:g}",
                verdict="ok" if holds else "refused",
            )
        )
    note = "this job is already charged" if charged else f"{ledger.path}"
    return ConsentSection(key="ledger", title=title, rows=tuple(rows), note=note)

"""What a job commits to, before joining it, and one offline page about it afterwards.

    summary = inspect_job("job.toml", site_policy="site-policy.toml", state_dir="state")      # offline
    summary = inspect_job("job.toml", policy="policy.toml", node="HOST:7443")   # + the node's decoded evidence
    for line in summary_lines(summary): print(line)                            # `enclavefl job inspect`

    report = job_report("job.toml", metrics="rounds.jsonl", receipts="model.receipts.json", policy="policy.toml")
    write_job_report(report, "report.html")                                    # `enclavefl job report`

Attesting a node for inspection sends it a fresh nonce and nothing else: no join, no key, no update. The
evidence is shown only once it verified under `policy` (an AttestationError leaf otherwise), from the node
itself or from a receipts file's embedded attestation (the one the model owner verified).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from enclavefl.core.job import JobSpec
from enclavefl.core.jobfile import load_job
from enclavefl.errors import ConfigError
from enclavefl.owner.consent import ConsentSummary, consent_summary, summary_lines
from enclavefl.owner.consent_evidence import AttestedEvidence
from enclavefl.owner.metrics_history import read_history
from enclavefl.owner.provenance import read_receipts_file, verify_provenance
from enclavefl.owner.report_html import ChainEntry, JobReport, render_report
from enclavefl.owner.site_policy import SitePolicy
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.policy_file import load_policy

PathLike = str | os.PathLike[str]

__all__ = [
    "AttestedEvidence",
    "ConsentSummary",
    "JobReport",
    "attest_for_inspection",
    "inspect_job",
    "job_report",
    "summary_lines",
    "write_job_report",
]


def _job(job: JobSpec | PathLike) -> JobSpec:
    return job if isinstance(job, JobSpec) else load_job(Path(job))


def _policy(policy: AttestationPolicy | PathLike | None) -> AttestationPolicy | None:
    if policy is None or isinstance(policy, AttestationPolicy):
        return policy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the caller says INSECURE in its own words (policy_warning)
        return load_policy(Path(policy))


def _site(site_policy: SitePolicy | PathLike | None) -> SitePolicy | None:
    if site_policy is None or isinstance(site_policy, SitePolicy):
        return site_policy
    return SitePolicy.load(Path(site_policy))


def attest_for_inspection(
    node: str, *, job: JobSpec, policy: AttestationPolicy, pccs_url: str | None = None
) -> AttestedEvidence:
    """Attest the node with a fresh nonce and verify its evidence under `policy`; nothing else is sent."""
    from enclavefl.owner.attested import attest_node
    from enclavefl.tee.verify.pccs import PccsCollateralSource
    from enclavefl.transport.grpc_client import NodeClient
    from enclavefl.transport.tls import split_address

    split_address(node)
    try:
        collateral = PccsCollateralSource(pccs_url) if pccs_url is not None else None
    except ValueError as exc:
        raise ConfigError(f"--pccs-url: {exc}") from None
    client = NodeClient.connect(node)
    try:
        attested = attest_node(client, job=job, policy=policy, now=int(time.time()), collateral=collateral)
    finally:
        client.close()
    assert attested.bundle is not None
    return AttestedEvidence(
        verified=attested.verified,
        bundle=attested.bundle,
        nonce=attested.nonce,
        attested_at=attested.attested_at,
        source=f"the node at {node}, just now (a fresh nonce of this inspection)",
    )


def inspect_job(
    job: JobSpec | PathLike,
    *,
    site_policy: SitePolicy | PathLike | None = None,
    state_dir: PathLike | None = None,
    policy: AttestationPolicy | PathLike | None = None,
    node: str | None = None,
    receipts: PathLike | None = None,
    pccs_url: str | None = None,
) -> ConsentSummary:
    """The consent summary of `job`; with `policy` and `node` (or `receipts`), the verified enclave's evidence."""
    return _inspect(
        _job(job),
        site=_site(site_policy),
        state_dir=state_dir,
        policy=_policy(policy),
        node=node,
        receipts=receipts,
        pccs_url=pccs_url,
    )[0]


def _inspect(
    spec: JobSpec,
    *,
    site: SitePolicy | None,
    state_dir: PathLike | None,
    policy: AttestationPolicy | None,
    node: str | None,
    receipts: PathLike | None,
    pccs_url: str | None,
) -> tuple[ConsentSummary, tuple[ChainEntry, ...]]:
    if (node is not None or receipts is not None) and policy is None:
        raise ConfigError("--policy: needed to verify the enclave's evidence (with --node or --receipts)")
    evidence: AttestedEvidence | None = None
    chain: tuple[ChainEntry, ...] = ()
    if receipts is not None:
        assert policy is not None
        evidence, chain = _from_receipts(Path(receipts), spec, policy)
    if node is not None:
        assert policy is not None
        evidence = attest_for_inspection(node, job=spec, policy=policy, pccs_url=pccs_url)
    summary = consent_summary(
        spec,
        site=site,
        attestation=policy,
        ledger_dir=Path(state_dir) if state_dir is not None else None,
        enclave=evidence,
    )
    return summary, chain


def _from_receipts(
    path: Path, job: JobSpec, policy: AttestationPolicy
) -> tuple[AttestedEvidence, tuple[ChainEntry, ...]]:
    """The receipts file's attestation and chain, verified for `job` (all its rounds) under `policy`."""
    if not path.is_file():
        raise ConfigError(f"--receipts {path}: no such file")
    document = read_receipts_file(path)
    provenance = verify_provenance(document, policy=policy, job=job)
    att = document.attestation
    evidence = AttestedEvidence(
        verified=provenance.enclave,
        bundle=att.bundle,
        nonce=att.nonce,
        attested_at=att.attested_at,
        source=f"{path} (the model owner's attestation, its nonce)",
    )
    chain = tuple(
        ChainEntry(receipt=receipt, sha256=signed.sha256.hex())
        for receipt, signed in zip(provenance.receipts, document.receipts, strict=True)
    )
    return evidence, chain


def job_report(
    job: JobSpec | PathLike,
    *,
    metrics: PathLike | None = None,
    receipts: PathLike | None = None,
    policy: AttestationPolicy | PathLike | None = None,
    node: str | None = None,
    site_policy: SitePolicy | PathLike | None = None,
    state_dir: PathLike | None = None,
    pccs_url: str | None = None,
) -> JobReport:
    """Everything the report page shows: the consent summary, the round records, the verified chain and evidence."""
    summary, chain = _inspect(
        _job(job),
        site=_site(site_policy),
        state_dir=state_dir,
        policy=_policy(policy),
        node=node,
        receipts=receipts,
        pccs_url=pccs_url,
    )
    history = read_history(Path(metrics)) if metrics is not None else ()
    return JobReport(
        summary=summary,
        history=history,
        chain=chain,
        chain_source=str(receipts) if receipts is not None else "",
        generated_at=int(time.time()),
    )


def write_job_report(report: JobReport, out: PathLike) -> Path:
    """Write the page (one file, nothing beside it); ConfigError when its directory does not exist."""
    target = Path(out)
    if not target.absolute().parent.is_dir():
        raise ConfigError(f"--out {target}: its directory does not exist")
    target.write_text(render_report(report), encoding="utf-8")
    return target

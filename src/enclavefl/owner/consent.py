"""What a job commits to, in one screen: the consent summary a data owner reads before joining.

    summary = consent_summary(job)                                  # the job file alone
    summary = consent_summary(job, site=site, attestation=policy,   # + the owner's own limits, field by field,
                              ledger_dir=Path("state"),             #   its lifetime ledger before and after,
                              enclave=attested)                     #   and the enclave's decoded evidence
    for line in summary_lines(summary): print(line)                 # `enclavefl job inspect`

Every figure comes from the job spec whose digest the enclave attests, so what is shown is what is enforced.
The same summary feeds the offline HTML report (owner/report_html.py). Sections and rows carry stable keys
(`summary.value("job", "min_contributions")`) that tests and the report's markup use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import NameOID

from enclavefl.core.job import JobSpec
from enclavefl.errors import ConfigError
from enclavefl.owner.consent_rows import ConsentRow, ConsentSection
from enclavefl.owner.site_limits import certificate_fingerprint
from enclavefl.owner.site_policy import job_epsilon
from enclavefl.privacy.params import DpParams

if TYPE_CHECKING:
    from pathlib import Path

    from enclavefl.owner.consent_evidence import AttestedEvidence
    from enclavefl.owner.site_policy import SitePolicy
    from enclavefl.tee.verify.policy import AttestationPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentSummary:
    job_name: str
    job_digest: str
    sections: tuple[ConsentSection, ...]

    def section(self, key: str) -> ConsentSection:
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(key)

    def value(self, section: str, key: str) -> str:
        for row in self.section(section).rows:
            if row.key == key:
                return row.value
        raise KeyError(f"{section}.{key}")


def consent_summary(
    job: JobSpec,
    *,
    site: SitePolicy | None = None,
    attestation: AttestationPolicy | None = None,
    ledger_dir: Path | None = None,
    enclave: AttestedEvidence | None = None,
) -> ConsentSummary:
    """The job's commitments, plus the site policy and ledger when given, plus the decoded evidence once attested."""
    from enclavefl.owner.consent_site import ledger_section, site_policy_section

    sections = [
        job_section(job),
        aggregation_section(job),
        dp_section(job),
        masked_section(job),
        training_section(job),
        model_section(job),
        parties_section(job),
        site_policy_section(job, site, attestation),
        ledger_section(job, site, ledger_dir),
    ]
    if enclave is not None:
        from enclavefl.owner.consent_evidence import evidence_section

        sections.append(evidence_section(enclave, job))
    return ConsentSummary(job_name=job.name, job_digest=job.digest().hex(), sections=tuple(sections))


def summary_lines(summary: ConsentSummary) -> list[str]:
    """The summary as aligned text, one section after another (what `job inspect` prints)."""
    lines = [f"job {summary.job_name!r}, job digest {summary.job_digest}"]
    for section in summary.sections:
        if not section.rows:
            lines += ["", f"{section.title}: {section.note or '-'}"]
            continue
        lines += ["", f"{section.title}:"]
        if section.note:
            lines.append(f"  {section.note}")
        width = max((len(r.label) for r in section.rows), default=0)
        for row in section.rows:
            mark = {"ok": "  [ok]", "refused": "  [REFUSED]"}.get(row.verdict, "")
            lines.append(f"  {row.label.ljust(width)}  {row.value}{mark}")
    return lines


def _row(key: str, label: str, value: object) -> ConsentRow:
    return ConsentRow(key=key, label=label, value=value if isinstance(value, str) else _fmt(value))


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def job_section(job: JobSpec) -> ConsentSection:
    limit = job.update_size_limit()
    retry = (
        f"retry, at most {job.max_round_attempts} attempts per round, then the job stops"
        if job.on_round_failure == "retry"
        else "stop the job at the first round that fails"
    )
    return ConsentSection(
        key="job",
        title="Job",
        rows=(
            _row("name", "name", job.name),
            _row("digest", "job digest", job.digest().hex()),
            _row("rounds", "rounds", job.rounds),
            _row("min_contributions", "K (fewest updates in any released value)", job.min_contributions),
            _row("enrolled", "data owners enrolled", len(job.data_owners)),
            _row("round_deadline_seconds", "round deadline (s)", job.round_deadline_seconds),
            _row("on_round_failure", "a round with fewer than K updates", retry),
            _row("max_round_attempts", "attempts per round", job.max_round_attempts),
            _row(
                "max_examples_per_update", "largest example count one update may declare", job.max_examples_per_update
            ),
            _row("max_update_bytes", "largest update (bytes)", limit),
            _row(
                "evaluate_every",
                "owners' held-out evaluation (means over >= K sent with updates)",
                f"every {job.evaluate_every} rounds, from round 1" if job.evaluate_every else "none",
            ),
        ),
    )


def aggregation_section(job: JobSpec) -> ConsentSection:
    params = tuple(_row(f"param.{k}", k, v) for k, v in sorted(job.strategy.params.items()))
    return ConsentSection(
        key="aggregation",
        title="Aggregation",
        rows=(_row("strategy", "strategy", job.strategy.name), *params),
        note="the rule the enclave applies to the round's updates, with its parameters",
    )


def dp_section(job: JobSpec) -> ConsentSection:
    if job.dp is None:
        return ConsentSection(
            key="dp",
            title="Differential privacy",
            rows=(_row("enabled", "central DP", False),),
            note="no noise is added: the released model and metrics carry no DP guarantee",
        )
    dp = DpParams.from_mapping(job.dp)
    schedule = ", ".join(f"{e:.4g}" for e in dp.epsilon_schedule)
    return ConsentSection(
        key="dp",
        title="Differential privacy",
        rows=(
            _row("enabled", "central DP", True),
            _row("epsilon_round", "epsilon of one round", f"{dp.epsilon_schedule[0]:.4g}"),
            _row("epsilon_total", "epsilon of the whole job", f"{job_epsilon(dp):.4g}"),
            _row("delta", "delta (per round and in total)", dp.delta),
            _row("epsilon_budget", "epsilon budget (the job stops before it)", dp.epsilon_budget),
            _row("clip_norm", "clipping: L2 bound on each update's delta", dp.clip_norm),
            _row("noise_multiplier", "noise multiplier (std / clip norm)", dp.noise_multiplier),
            _row("accountant", "accountant", dp.accountant),
            _row("epsilon_schedule", "epsilon after each round", schedule),
            _row("metrics", "owners' metrics released", "none (a DP job withholds them)"),
        ),
        note="Gaussian noise inside the enclave; each data owner recomputes this schedule before it attests",
    )


def masked_section(job: JobSpec) -> ConsentSection:
    spec = job.secure_aggregation
    if spec is None or not spec.enabled:
        return ConsentSection(
            key="masked",
            title="Masked mode",
            rows=(_row("enabled", "masked updates", False),),
            note="updates reach the enclave unmasked, inside TLS that ends in the enclave",
        )
    return ConsentSection(
        key="masked",
        title="Masked mode",
        rows=(
            _row("enabled", "masked updates", True),
            _row("degree", "neighbours per owner", spec.degree),
            _row("threshold", "shares needed to unmask", spec.threshold),
            _row("clip_norm", "clipping of each owner's delta", spec.clip_norm),
            _row("scale", "fixed-point scale", spec.scale),
            _row("modulus_bits", "modulus (bits)", spec.modulus_bits),
            *((_row("noise", "where the DP noise is added", spec.noise),) if spec.noise is not None else ()),
        ),
        note={
            "skellam": "owners mask their updates after adding their share of the DP noise: every sum the enclave "
            "unmasks is already noised",
            "insecure_central": "INSECURE: the enclave adds the DP noise after unmasking, so its memory holds each "
            "round's noise-free sum (refused unless your site policy sets allow_insecure_central_noise = true)",
        }.get(spec.noise or "", "owners mask their updates; the enclave sees only the unmasked sum"),
    )


def training_section(job: JobSpec) -> ConsentSection:
    t = job.train
    rows = [
        _row("local_steps", "optimizer steps per round", t.local_steps)
        if t.local_steps is not None
        else _row("local_epochs", "epochs per round", t.local_epochs),
        _row("batch_size", "batch size", t.batch_size if t.batch_size is not None else "full batch"),
        _row("lr", "learning rate", t.lr),
        _row("optimizer", "optimizer", t.optimizer),
        _row("momentum", "momentum", t.momentum),
        _row("proximal_mu", "FedProx mu", t.proximal_mu),
        _row("seed", "seed", t.seed),
    ]
    return ConsentSection(key="training", title="Local training", rows=tuple(rows))


def model_section(job: JobSpec) -> ConsentSection:
    schema = job.model_schema
    if schema is None:
        return ConsentSection(key="model", title="Model", rows=(), note="the job names no model schema")
    parameters = 0
    for spec in schema.tensors:
        count = 1
        for dim in spec.shape:
            count *= dim
        parameters += count
    return ConsentSection(
        key="model",
        title="Model",
        rows=(
            _row("schema_digest", "schema digest", hashlib.sha256(schema.to_canonical_json().encode()).hexdigest()),
            _row("tensors", "tensors", len(schema.tensors)),
            _row("parameters", "parameters", f"{parameters:,}"),
            _row("bytes", "bytes", f"{schema.nbytes:,} ({schema.nbytes / 2**20:.2f} MiB)"),
            _row("initial_model_sha256", "initial model weights digest", job.initial_model_sha256),
        ),
        note="the schema digest is SHA-256 of the tensors' names, shapes and dtypes in canonical form",
    )


def parties_section(job: JobSpec) -> ConsentSection:
    rows = [_party("model_owner", "model owner", job.model_owner_certificate_pem)]
    rows += [_party(f"owner.{o.name}", f"data owner {o.name}", o.certificate_pem) for o in job.data_owners]
    return ConsentSection(
        key="parties",
        title="Parties",
        rows=tuple(rows),
        note="each by the SHA-256 of its certificate (DER), as a site policy's model_owners lists it",
    )


def _party(key: str, label: str, certificate_pem: str) -> ConsentRow:
    if not certificate_pem:
        return _row(key, label, "no certificate (nobody can act as this party)")
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as exc:
        raise ConfigError(f"the job's certificate of {label} does not parse: {exc}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else "-"
    return _row(key, label, f"CN={common_name} sha256:{certificate_fingerprint(certificate_pem)}")

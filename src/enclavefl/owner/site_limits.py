"""The site policy's limits on who joins a job, what model it trains and how often a round may run (issue 22 item 4).

    check_participants(site, job)   # co_owners, min_distinct_owners, model_schemas, initial_models, base_models
    check_rounds_and_training(site, job)   # max_round_attempts, min_batch_size, strategy parameters
    check_masking(site, job)        # require_secure_aggregation, min_secagg_threshold, max_secagg_clip_norm,
                                    # allow_insecure_central_noise
    check_cohort(site, job)         # min_clients_per_round, max_fraction_per_round

Every field of a job that changes what leaves a data owner's site is bounded by one of these keys or by one in
owner/site_policy.py; `BOUNDED_BY` says which, and `REVIEWED_UNBOUNDED` lists, with the reason, the few fields
that cannot change what leaves the site. tests/owner/test_site_policy.py (test_every_job_field_is_bounded_by_the_
site_policy_or_reviewed) enumerates every field of the job and fails on one that is in neither, so a field added
to the job must be bounded or argued for here.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from enclavefl.core.job import JobSpec
from enclavefl.core.secure_aggregation import INSECURE_CENTRAL_WARNING
from enclavefl.core.weights import ModelSchema
from enclavefl.errors import ConfigError, SitePolicyRefused


class SiteLimits(Protocol):
    """The SitePolicy keys these checks read (owner/site_policy.py defines them; a Protocol keeps imports one-way)."""

    @property
    def max_round_attempts(self) -> int | None: ...
    @property
    def co_owners(self) -> frozenset[str]: ...
    @property
    def min_distinct_owners(self) -> int | None: ...
    @property
    def min_batch_size(self) -> int | None: ...
    @property
    def max_strategy_params(self) -> tuple[tuple[str, float], ...]: ...
    @property
    def model_schemas(self) -> frozenset[str]: ...
    @property
    def initial_models(self) -> frozenset[str]: ...
    @property
    def base_models(self) -> frozenset[str]: ...
    @property
    def require_secure_aggregation(self) -> bool: ...
    @property
    def min_secagg_threshold(self) -> int | None: ...
    @property
    def max_secagg_clip_norm(self) -> float | None: ...
    @property
    def allow_insecure_central_noise(self) -> bool: ...
    @property
    def min_clients_per_round(self) -> int | None: ...
    @property
    def max_fraction_per_round(self) -> float | None: ...


BOUNDED_BY: Final[dict[str, tuple[str, ...]]] = {
    "rounds": ("max_rounds",),
    "train.local_steps": ("max_local_steps",),
    "train.local_epochs": ("max_local_epochs",),
    "train.batch_size": ("min_batch_size",),
    "strategy.name": ("strategies",),
    "strategy.params": ("max_strategy_params",),
    "min_contributions": ("min_contributions",),
    "data_owners": ("co_owners", "min_distinct_owners"),
    "model_schema": ("model_schemas", "max_model_bytes"),
    "initial_model_sha256": ("initial_models",),
    "base_model": ("base_models",),  # LoRA: the frozen base the adapters train on (a trap base leaks like a trap init)
    "base_model.sha256": ("base_models",),
    "dp": ("require_dp", "max_epsilon", "max_delta", "accountants"),
    "model_owner_certificate_pem": ("model_owners",),
    "on_round_failure": ("max_round_attempts",),  # "stop" is one attempt; "retry" up to max_round_attempts
    "max_round_attempts": ("max_round_attempts",),
    "secure_aggregation": ("require_secure_aggregation",),
    "secure_aggregation.enabled": ("require_secure_aggregation",),
    "secure_aggregation.threshold": ("min_secagg_threshold",),
    "secure_aggregation.clip_norm": ("max_secagg_clip_norm",),
    # where a DP job's noise is added (owners or enclave): the owner recomputes the schedule for it (max_epsilon);
    # noise added by the enclave after unmasking is refused unless the site opts in
    "secure_aggregation.noise": ("max_epsilon", "allow_insecure_central_noise"),
    "clients_per_round": ("min_clients_per_round", "max_fraction_per_round"),
    "fraction_per_round": ("min_clients_per_round", "max_fraction_per_round"),
}
"""Job field (dotted path) -> the site-policy keys that bound it."""

REVIEWED_UNBOUNDED: Final[dict[str, str]] = {
    "name": "a label for humans; enters the digest only",
    "train": "a section: each of its fields is bounded or reviewed on its own",
    "train.lr": "scales the local step; the update is computed from the same batches and steps the site bounds",
    "train.optimizer": "sgd or adam over the same bounded batches and steps",
    "train.momentum": "mixes the same bounded steps' gradients",
    "train.proximal_mu": "pulls the local model towards the global one: less of the data, not more",
    "train.seed": "orders the same local data; fresh randomness per attempt is issue 22 item 2",
    "strategy": "a section: its name and params are bounded",
    "round_deadline_seconds": "when the node gives up on a round; timing only",
    "evaluate_every": "asks for held-out figures; a site sends them only when it gives held-out data itself "
    "(--eval-data), and they leave the enclave only as means over >= K owners (never in a DP or masked job)",
    "max_update_bytes": "the node's cap on an upload's size; the site sends its model-shaped update either way",
    "max_examples_per_update": "caps the weight others may claim; a larger weight of a co-owner shrinks this "
    "site's share of the aggregate",
    "base_model.name": "a label for humans; the base is named by its sha256",
    "extra": "read by no code path; a reader added later must move its key to BOUNDED_BY",
    "secure_aggregation.degree": "the job validator requires 2 * threshold > degree + 1 and the threshold is "
    "bounded, so a degree cannot lower the share holders an attacker must reach",
    "secure_aggregation.scale": "fixed-point precision of the clipped update inside the mask; the validator "
    "refuses a modulus the sum could wrap",
    "secure_aggregation.modulus_bits": "the masks are uniform modulo 2^32 or 2^64 alike; the validator refuses a "
    "modulus the sum could wrap",
}
"""Job fields that cannot change what leaves the site, with the reason (reviewed; keep this list short)."""


def schema_digest(schema: ModelSchema) -> str:
    """SHA-256 (hex) of a model schema's canonical JSON (tensor names, shapes, dtypes): what `model_schemas`
    lists. `enclavefl job inspect` and a refusal print it."""
    return hashlib.sha256(schema.to_canonical_json().encode()).hexdigest()


def certificate_fingerprint(certificate_pem: str) -> str:
    """SHA-256 (hex) of a certificate's DER, as `model_owners` and `co_owners` list it; '' for no certificate."""
    if not certificate_pem:
        return ""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as exc:
        raise ConfigError(f"a certificate in the job does not parse: {exc}") from None
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def check_participants(site: SiteLimits, job: JobSpec) -> None:
    """Who is enrolled (an allow-list of co-owners, a minimum of distinct keys) and which model is trained."""
    if site.min_distinct_owners is not None:
        keys = {o.certificate_pem or o.public_key_pem for o in job.data_owners}
        if len(keys) < site.min_distinct_owners:
            raise SitePolicyRefused(
                "min_distinct_owners",
                f"{len(keys)} distinct enrolled owners",
                f"at least {site.min_distinct_owners}",
                "fewer parties share the aggregate",
            )
    if site.co_owners:
        for owner in job.data_owners:
            fingerprint = certificate_fingerprint(owner.certificate_pem)
            if fingerprint not in site.co_owners:
                raise SitePolicyRefused(
                    "co_owners",
                    f"data owner {owner.name!r} with certificate {fingerprint or '(none)'}",
                    "only the certificates listed (yourself included)",
                    "an owner the site does not know may be the model owner's sybil",
                )
    if site.model_schemas:
        digest = schema_digest(job.model_schema) if job.model_schema is not None else "no model schema"
        if digest not in site.model_schemas:
            raise SitePolicyRefused(
                "model_schemas", f"model schema {digest}", sorted(site.model_schemas), "architecture not allowed"
            )
    if site.initial_models and job.initial_model_sha256.lower() not in site.initial_models:
        raise SitePolicyRefused(
            "initial_models",
            f"initial model {job.initial_model_sha256 or '(none)'}",
            sorted(site.initial_models),
            "starting weights not allowed",
        )
    if site.base_models and job.base_model is not None and job.base_model.sha256 not in site.base_models:
        raise SitePolicyRefused(  # a job without a base model trains (and sends) the whole model: model_schemas
            "base_models", f"base model {job.base_model.sha256}", sorted(site.base_models), "base not allowed"
        )


def check_rounds_and_training(site: SiteLimits, job: JobSpec) -> None:
    """How often one round may be opened, the smallest batch, and the strategy's numeric parameters."""
    attempts = job.max_round_attempts if job.on_round_failure == "retry" else 1
    if site.max_round_attempts is not None and attempts > site.max_round_attempts:
        raise SitePolicyRefused(
            "max_round_attempts",
            f"{attempts} attempts per round (on_round_failure = {job.on_round_failure!r})",
            f"at most {site.max_round_attempts}",
            "every attempt sends a fresh update",
        )
    batch = job.train.batch_size
    if site.min_batch_size is not None and batch is not None and batch < site.min_batch_size:
        raise SitePolicyRefused(
            "min_batch_size",
            f"batch size {batch}",
            f"at least {site.min_batch_size}",
            "a small batch's gradient reveals its examples more easily",
        )
    if site.max_strategy_params:
        limits = dict(site.max_strategy_params)
        for param, value in sorted(job.strategy.params.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            limit = limits.get(param)
            if limit is None or value > limit:
                raise SitePolicyRefused(
                    "max_strategy_params",
                    f"{job.strategy.name}.{param} = {value:g}",
                    f"at most {limit:g}" if limit is not None else f"only the parameters listed: {sorted(limits)}",
                    "server-optimizer and strategy parameters shape what is released",
                )


def check_masking(site: SiteLimits, job: JobSpec) -> None:
    """Masked mode required, its threshold and clipping bounded, and a DP job's noise added before masking."""
    spec = job.secure_aggregation if job.masked else None
    if spec is None:
        if site.require_secure_aggregation:
            raise SitePolicyRefused(
                "require_secure_aggregation", "plaintext updates", "masked updates", "masked mode required"
            )
        return
    if site.min_secagg_threshold is not None and spec.threshold < site.min_secagg_threshold:
        raise SitePolicyRefused(
            "min_secagg_threshold",
            f"secure_aggregation.threshold {spec.threshold}",
            f"at least {site.min_secagg_threshold}",
            "fewer colluding share holders rebuild a mask",
        )
    if site.max_secagg_clip_norm is not None and spec.clip_norm > site.max_secagg_clip_norm:
        raise SitePolicyRefused(
            "max_secagg_clip_norm",
            f"secure_aggregation.clip_norm {spec.clip_norm:g}",
            f"at most {site.max_secagg_clip_norm:g}",
            "a larger norm lets more of each update through",
        )
    check_noise_placement(site, job)


def check_noise_placement(site: SiteLimits | None, job: JobSpec) -> None:
    """A masked DP job whose enclave adds the noise after unmasking is refused unless the site opted in
    (`allow_insecure_central_noise = true`; no site policy opts in), and said loudly when it did."""
    spec = job.secure_aggregation
    if spec is None or not job.masked or not spec.insecure_central_noise:
        return
    if site is None or not site.allow_insecure_central_noise:
        raise SitePolicyRefused(
            "allow_insecure_central_noise",
            "secure_aggregation.noise = 'insecure_central'",
            "noise added by the owners before masking ('skellam', the default)",
            "the enclave would hold each round's noise-free sum",
        )
    logging.getLogger(__name__).warning("%s (accepted: allow_insecure_central_noise = true)", INSECURE_CENTRAL_WARNING)


def check_cohort(site: SiteLimits, job: JobSpec) -> None:
    """Cohorts: the fewest owners drawn per round, and the largest share of the enrolled owners one round takes
    (a job without cohorts takes all of them, every round: fraction 1)."""
    owners = len(job.data_owners)
    size = job.cohort_size or owners
    if site.min_clients_per_round is not None and size < site.min_clients_per_round:
        raise SitePolicyRefused(
            "min_clients_per_round",
            f"{size} owners drawn per round",
            f"at least {site.min_clients_per_round}",
            "fewer sites' updates can make up each round's aggregate",
        )
    fraction = size / owners if owners else 1.0
    if site.max_fraction_per_round is not None and fraction > site.max_fraction_per_round:
        raise SitePolicyRefused(
            "max_fraction_per_round",
            f"{size} of {owners} enrolled owners per round ({fraction:.3g})",
            f"at most {site.max_fraction_per_round:g}",
            "this site's data would join more of the rounds",
        )

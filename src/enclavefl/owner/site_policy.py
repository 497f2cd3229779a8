"""A data owner's own limits on any job it is handed, checked before it attests or sends anything.

    site = SitePolicy.load(Path("site-policy.toml"))     # or SitePolicy(min_contributions=5, require_dp=True)
    site.check_job(job, attestation_policy)             # SitePolicyRefused naming the field, value and limit

The job's author cannot bypass it: it runs on the data owner's machine, against the job the enclave will attest.
The attestation policy stays the one switch for trust (which enclave); the site policy can only narrow it: with
`allow_simulated_enclave = false` (the default) an attestation policy that accepts simulation is refused too.
`lifetime_epsilon` is enforced by the owner's privacy ledger (owner/ledger.py) across all jobs.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from enclavefl.core.job import JobSpec
from enclavefl.errors import ConfigError, SitePolicyRefused
from enclavefl.owner.site_limits import (
    certificate_fingerprint,
    check_cohort,
    check_masking,
    check_participants,
    check_rounds_and_training,
)
from enclavefl.privacy.params import DpParams
from enclavefl.tee.verify.policy import AttestationPolicy

_NUMBER_KEYS: Final = (
    "max_epsilon",
    "max_delta",
    "lifetime_epsilon",
    "lifetime_delta",
    "max_secagg_clip_norm",
    "max_fraction_per_round",
)
_INT_KEYS: Final = (
    "min_contributions",
    "max_rounds",
    "max_local_steps",
    "max_local_epochs",
    "max_model_bytes",
    "max_round_attempts",
    "min_distinct_owners",
    "min_batch_size",
    "min_secagg_threshold",
    "min_clients_per_round",
)
_BOOL_KEYS: Final = (
    "require_dp",
    "allow_simulated_enclave",
    "require_secure_aggregation",
    "allow_insecure_central_noise",
)
_LIST_KEYS: Final = (
    "accountants",
    "strategies",
    "model_owners",
    "co_owners",
    "model_schemas",
    "initial_models",
    "base_models",
)
_HEX_LIST_KEYS: Final = (
    "model_owners",
    "co_owners",
    "model_schemas",
    "initial_models",
    "base_models",
)  # compared lower-case


@dataclass(frozen=True, slots=True, kw_only=True)
class SitePolicy:
    """Limits a data owner puts on every job; a missing limit is no limit, except the two safe defaults."""

    min_contributions: int = 2  # K = 1 would release one owner's update as it is
    require_dp: bool = False
    max_epsilon: float | None = None  # largest epsilon one job may spend (at the job's own delta)
    max_delta: float | None = None
    accountants: frozenset[str] = frozenset({"rdp", "pld"})
    strategies: frozenset[str] = frozenset()  # empty: every strategy (and server optimizer) the job validator allows
    max_rounds: int | None = None
    max_local_steps: int | None = None
    max_local_epochs: int | None = None
    model_owners: frozenset[str] = frozenset()  # SHA-256 (hex) of allowed model owners' certificates (DER); empty: any
    max_model_bytes: int | None = None
    allow_simulated_enclave: bool = False
    # Issue 22 item 4 (owner/site_limits.py): who joins, which model, how often a round runs, masked mode.
    max_round_attempts: int | None = None  # times one round may be opened ("stop" counts as 1)
    co_owners: frozenset[str] = frozenset()  # SHA-256 (hex) of every enrolled owner's certificate (DER); empty: any
    min_distinct_owners: int | None = None  # fewest distinct enrolled keys
    min_batch_size: int | None = None  # smallest local batch (a full-batch job passes)
    max_strategy_params: tuple[tuple[str, float], ...] = ()  # name -> most; non-empty: numeric params must be listed
    model_schemas: frozenset[str] = frozenset()  # schema digests (owner/site_limits.schema_digest); empty: any
    initial_models: frozenset[str] = frozenset()  # SHA-256 (hex) of allowed initial weights; empty: any
    base_models: frozenset[str] = frozenset()  # weights digests of allowed frozen base models (LoRA); empty: any
    require_secure_aggregation: bool = False
    min_secagg_threshold: int | None = None
    max_secagg_clip_norm: float | None = None
    # Masked DP jobs whose enclave adds the noise after unmasking (noise = "insecure_central"): refused unless true.
    allow_insecure_central_noise: bool = False
    # Cohorts (issue 26): the fewest owners drawn per round; the largest share of the enrolled one round takes.
    min_clients_per_round: int | None = None
    max_fraction_per_round: float | None = None
    lifetime_epsilon: float | None = None  # across all jobs, enforced by the privacy ledger
    lifetime_delta: float = 1e-5
    lifetime_accountant: str = "rdp"
    source: str = field(default="<defaults>", compare=False)

    @classmethod
    def load(cls, path: Path) -> SitePolicy:
        """Parse a site-policy TOML file; ConfigError names the key and the file."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--site-policy {path}: {exc}") from None
        return cls.from_mapping(raw, source=str(path))

    @classmethod
    def from_mapping(cls, raw: dict[str, object], *, source: str = "<mapping>") -> SitePolicy:
        known = {*_NUMBER_KEYS, *_INT_KEYS, *_BOOL_KEYS, *_LIST_KEYS, "lifetime_accountant", "max_strategy_params"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values: dict[str, object] = {"source": source}
        for key, value in raw.items():
            values[key] = _parsed(key, value, source)
        policy = cls(**values)  # type: ignore[arg-type]
        policy._check_consistent()
        return policy

    def _check_consistent(self) -> None:
        if self.min_contributions < 1:
            raise ConfigError(f"{self.source}: min_contributions must be at least 1")
        if not self.accountants <= {"rdp", "pld"} or self.lifetime_accountant not in ("rdp", "pld"):
            raise ConfigError(f"{self.source}: accountants are 'rdp' or 'pld'")
        if not 0 < self.lifetime_delta < 1:
            raise ConfigError(f"{self.source}: lifetime_delta must lie in (0, 1)")
        if self.max_fraction_per_round is not None and not 0 < self.max_fraction_per_round <= 1:
            raise ConfigError(f"{self.source}: max_fraction_per_round must lie in (0, 1]")

    def check_job(self, job: JobSpec, attestation: AttestationPolicy) -> None:
        """Raise SitePolicyRefused for the first limit `job` (or the attestation policy) exceeds."""
        if attestation.simulation_allowed and not self.allow_simulated_enclave:
            raise SitePolicyRefused(
                "allow_simulated_enclave",
                "an attestation policy that accepts a SIMULATED enclave",
                "real enclaves",
                "the attestation policy may only be narrowed by the site policy, never widened",
            )
        if job.min_contributions < self.min_contributions:
            raise SitePolicyRefused(
                "min_contributions",
                f"K = {job.min_contributions}",
                f"K >= {self.min_contributions}",
                "fewer updates per released aggregate",
            )
        self._check_dp(job)
        if self.strategies and job.strategy.name not in self.strategies:
            raise SitePolicyRefused("strategies", job.strategy.name, sorted(self.strategies), "strategy not allowed")
        _at_most("max_rounds", job.rounds, self.max_rounds, "rounds")
        _at_most("max_local_steps", job.train.local_steps, self.max_local_steps, "optimizer steps per round")
        _at_most("max_local_epochs", job.train.local_epochs, self.max_local_epochs, "epochs per round")
        model_bytes = job.model_schema.nbytes if job.model_schema is not None else None
        _at_most("max_model_bytes", model_bytes, self.max_model_bytes, "model size in bytes")
        check_participants(self, job)
        check_rounds_and_training(self, job)
        check_masking(self, job)
        check_cohort(self, job)
        if self.model_owners:
            fingerprint = certificate_fingerprint(job.model_owner_certificate_pem)
            if fingerprint not in self.model_owners:
                raise SitePolicyRefused(
                    "model_owners",
                    fingerprint or "no model owner certificate",
                    sorted(self.model_owners),
                    "model owner not allowed",
                )

    def _check_dp(self, job: JobSpec) -> None:
        if job.dp is None:
            if self.require_dp or self.lifetime_epsilon is not None:
                why = "a lifetime budget needs every job to spend a bounded epsilon" if not self.require_dp else ""
                raise SitePolicyRefused(
                    "require_dp", "no differential privacy", "jobs with central DP", why or "DP required"
                )
            return
        dp = DpParams.from_mapping(job.dp)
        if dp.accountant not in self.accountants:
            raise SitePolicyRefused("accountants", dp.accountant, sorted(self.accountants), "accountant not allowed")
        _at_most("max_delta", dp.delta, self.max_delta, "delta")
        _at_most("max_epsilon", job_epsilon(dp), self.max_epsilon, "epsilon of the whole job")


def job_epsilon(dp: DpParams) -> float:
    """The most epsilon a job can spend: its last scheduled round, or the last one within its budget."""
    if dp.epsilon_budget is None:
        return dp.epsilon_schedule[-1]
    within = [e for e in dp.epsilon_schedule if e <= dp.epsilon_budget]
    return within[-1] if within else 0.0


def _at_most(key: str, value: float | None, limit: float | None, what: str) -> None:
    if value is not None and limit is not None and value > limit:
        raise SitePolicyRefused(key, f"{what} {value:g}", f"at most {limit:g}", "over the site's limit")


def _parsed(key: str, value: object, source: str) -> object:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a non-negative integer")
        return value
    if key in _NUMBER_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise bad("a positive number")
        return float(value)
    if key in _LIST_KEYS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return frozenset(v.lower() if key in _HEX_LIST_KEYS else v for v in value)
    if key == "max_strategy_params":
        if not isinstance(value, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value.values()
        ):
            raise bad("a table of parameter names and largest values (server_lr = 1.0)")
        return tuple(sorted((str(k), float(v)) for k, v in value.items()))
    if not isinstance(value, str):
        raise bad("a string")
    return value


DEFAULT_SITE_POLICY: Final = """\
# enclavefl site policy: this data owner's own limits on every job it is handed. `enclavefl data-owner run
# --site-policy THIS_FILE` checks the job against it before attesting the node or sending anything; a job outside
# it is refused with the key, the job's value and the limit (exit status in `enclavefl data-owner run --help`).
# A key left out is no limit, except min_contributions (2) and allow_simulated_enclave (false).

min_contributions = 3          # smallest K (updates per released aggregate) you accept
require_dp = true              # refuse jobs without central differential privacy
max_epsilon = 8.0              # most epsilon one job may spend (at the job's delta)
max_delta = 1e-5               # largest delta you accept
accountants = ["rdp", "pld"]   # accountants whose epsilon you accept
strategies = []                # allowed strategies and server optimizers; [] = any the job validator allows
max_rounds = 1000
max_local_steps = 1000         # optimizer steps per round (jobs that use local_steps)
max_local_epochs = 20          # epochs per round (jobs that use local_epochs)
max_model_bytes = 2_000_000_000
model_owners = []              # SHA-256 of allowed model owners' certificates (DER, hex); [] = any
allow_simulated_enclave = false  # true only for development: a simulated enclave protects nothing
max_round_attempts = 3         # times one round may be opened (each attempt sends a fresh update)
co_owners = []                 # SHA-256 of every enrolled owner's certificate, yours included; [] = any
min_distinct_owners = 3        # fewest distinct enrolled owners (keys)
min_batch_size = 16            # smallest local batch (full-batch jobs pass)
model_schemas = []             # allowed model architectures (schema digests, as a refusal prints them); [] = any
initial_models = []            # SHA-256 of allowed initial weights; [] = any
base_models = []               # weights digests of allowed frozen base models (LoRA jobs); [] = any
require_secure_aggregation = false  # true: refuse jobs without masked updates
min_secagg_threshold = 3       # masked mode: fewest share holders that rebuild a mask
max_secagg_clip_norm = 10.0    # masked mode: largest L2 norm of an update
allow_insecure_central_noise = false  # true accepts masked DP jobs whose enclave holds the noise-free sum
min_clients_per_round = 3      # fewest owners the enclave draws per round (a job without cohorts: all enrolled)
max_fraction_per_round = 1.0   # largest share of the enrolled owners one round draws (1.0: any)


# Lifetime budget across every job you join, kept in your --state directory's privacy ledger (`enclavefl
# data-owner ledger show`). Jobs are charged in full when you join them and composed with dp-accounting.
lifetime_epsilon = 20.0
lifetime_delta = 1e-5
lifetime_accountant = "rdp"

# Largest value of each numeric strategy / server-optimizer parameter (a table: keep it last). Once it has entries,
# a numeric parameter it does not list is refused. Empty: no limit.
[max_strategy_params]
# server_lr = 1.0
# momentum = 0.9
"""

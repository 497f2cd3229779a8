"""The job spec: everything a data owner agrees to, and its digest (DESIGN.md §4).

The digest is SHA-256 over a canonical JSON form (sorted keys, no whitespace), so two parties that hold
the same spec compute the same 32 bytes, and the enclave binds them into its quote.

The checks of the optional tables ([secure_aggregation], a cohort, a rule other than fedavg) run here too, from
modules loaded only when the job has that table (core/optional_checks.py): a plain job's enclave never loads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from enclavefl.core.enrolment import check_one_party_per_key
from enclavefl.core.optional_checks import load_check
from enclavefl.core.weights import ModelSchema
from enclavefl.errors import JobSpecError

if TYPE_CHECKING:  # loaded with the check, only by a job that has the table (core/optional_checks.py)
    from enclavefl.core.secure_aggregation import SecureAggregationSpec

JOB_DIGEST_DOMAIN = b"enclavefl/job/v1\x00"

OptimizerName = Literal["sgd", "adam"]
RoundFailurePolicy = Literal["retry", "stop"]
# A billion examples per owner and round is more than any site holds; 100 owners x 1e9 x a float32 value of
# 1e27 still sums finitely. A job may set a tighter bound (it enters the digest only when it differs).
DEFAULT_MAX_EXAMPLES_PER_UPDATE = 1_000_000_000
MAX_EXAMPLES_CEILING = 2**53  # float64 holds every integer up to here exactly: the fold weight is the count
OPEN_JOB_HORIZON = 10_000  # a job without an enrolled list can close with any number of updates: K checks this many


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """Local training each data owner runs per round (part of the job digest)."""

    local_steps: int | None = None  # optimizer steps per round; exclusive with local_epochs
    local_epochs: int | None = None
    batch_size: int | None = None  # None: full batch
    lr: float = 0.1
    optimizer: OptimizerName = "sgd"
    momentum: float = 0.0
    proximal_mu: float = 0.0  # FedProx; 0 is plain FedAvg
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.local_steps is None) == (self.local_epochs is None):
            raise JobSpecError("train: set exactly one of local_steps and local_epochs")
        for name in ("local_steps", "local_epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise JobSpecError(f"train.{name}: must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise JobSpecError(f"train.lr: must be positive, got {self.lr!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise JobSpecError(f"train.optimizer: must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.momentum < 0 or self.proximal_mu < 0:
            raise JobSpecError("train.momentum and train.proximal_mu must be >= 0")

    def to_canonical(self) -> dict[str, object]:
        return {
            "local_steps": self.local_steps,
            "local_epochs": self.local_epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "proximal_mu": self.proximal_mu,
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategySpec:
    """Which aggregation rule and its parameters (resolved to an object by aggregation/privacy code)."""

    name: str = "fedavg"
    params: Mapping[str, object] = field(default_factory=lambda: {"weighted": True})

    def to_canonical(self) -> dict[str, object]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DataOwnerSpec:
    """An enrolled data owner: a name for humans and the public key that authenticates it."""

    name: str
    public_key_pem: str = ""
    certificate_pem: str = ""  # self-signed certificate whose key signs the owner's Join (transport/auth.py)

    def to_canonical(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "public_key_pem": self.public_key_pem}
        if self.certificate_pem:  # added later: enters the digest only when set, so older digests hold
            out["certificate_pem"] = self.certificate_pem
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseModelSpec:
    """The frozen base model a job's travelling tensors (adapters) train on: it never travels, so the job names it.

    `sha256` is the weights digest (`ModelWeights.sha256`, the construction that names the initial model) of the
    base model's tensors as its own state_dict names them; `name` is a label for humans. Each data owner computes
    the digest of its local base model and refuses to train when it differs (task/subset.py).
    """

    name: str
    sha256: str

    def __post_init__(self) -> None:
        if not self.name:
            raise JobSpecError("base_model.name: must not be empty")
        digest = self.sha256
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise JobSpecError(f"base_model.sha256: must be 64 lowercase hex digits, got {digest!r}")

    def to_canonical(self) -> dict[str, object]:
        return {"name": self.name, "sha256": self.sha256}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """Everything that defines a federated job; its digest is what the enclave attests to."""

    name: str
    rounds: int
    train: TrainConfig
    strategy: StrategySpec = field(default_factory=StrategySpec)
    min_contributions: int = 1  # K: no aggregate of fewer updates ever leaves
    round_deadline_seconds: float = 300.0
    max_update_bytes: int | None = None  # None: exactly the model's size
    data_owners: tuple[DataOwnerSpec, ...] = ()
    model_schema: ModelSchema | None = None
    initial_model_sha256: str = ""
    dp: Mapping[str, object] | None = None  # central DP parameters, None when off
    extra: Mapping[str, object] = field(default_factory=dict)  # room for later issues; part of the digest
    model_owner_certificate_pem: str = ""  # authenticates the model owner's control-plane calls
    on_round_failure: RoundFailurePolicy = "retry"  # fewer than K updates at the deadline: re-open, or stop
    max_round_attempts: int = 3  # with "retry": how many times one round may be opened before the job stops
    # An update's fold weight is its self-reported example count: bounded so that no owner can outweigh the
    # others without limit or overflow the accumulator (2**63 examples made the released model [inf, ...]).
    max_examples_per_update: int = DEFAULT_MAX_EXAMPLES_PER_UPDATE
    secure_aggregation: SecureAggregationSpec | None = None  # masked mode (issue 16); None: plaintext updates
    # The frozen base model the travelling tensors (model_schema: adapters, a named subset) train on (issue 27);
    # None: the model schema is the whole model.
    base_model: BaseModelSpec | None = None
    # Cohorts (issue 26): owners per round, as a count or as a fraction of the enrolled (one form at most), drawn
    # inside the enclave each round (core/cohort.py); both None: every enrolled owner takes part in every round.
    clients_per_round: int | None = None
    fraction_per_round: float | None = None
    # Owners' evaluation on their held-out data (issue 24): every N rounds each owner evaluates the model a round
    # starts from and sends the figures with its update; only means over >= K owners leave. 0: never.
    evaluate_every: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise JobSpecError("name: must not be empty")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise JobSpecError(f"rounds: must be a positive integer, got {self.rounds!r}")
        if not isinstance(self.min_contributions, int) or self.min_contributions < 1:
            raise JobSpecError(f"min_contributions: must be a positive integer, got {self.min_contributions!r}")
        if self.data_owners and self.min_contributions > len(self.data_owners):
            raise JobSpecError(
                f"min_contributions: {self.min_contributions} exceeds the {len(self.data_owners)} enrolled data owners"
            )
        names = [o.name for o in self.data_owners]
        if len(set(names)) != len(names):
            raise JobSpecError("data_owners: names must be unique")
        check_one_party_per_key(self.data_owners)  # DuplicateEnrolment: one key enrolled under two names
        if not self.round_deadline_seconds > 0:
            raise JobSpecError("round_deadline_seconds: must be positive")
        if self.on_round_failure not in ("retry", "stop"):
            raise JobSpecError(f"on_round_failure: must be 'retry' or 'stop', got {self.on_round_failure!r}")
        if (
            isinstance(self.max_round_attempts, bool)
            or not isinstance(self.max_round_attempts, int)
            or (self.max_round_attempts < 1)
        ):
            raise JobSpecError(f"max_round_attempts: must be a positive integer, got {self.max_round_attempts!r}")
        bound = self.max_examples_per_update
        if isinstance(bound, bool) or not isinstance(bound, int) or not 1 <= bound <= MAX_EXAMPLES_CEILING:
            raise JobSpecError(
                f"max_examples_per_update: must be an integer from 1 to {MAX_EXAMPLES_CEILING}, got {bound!r}"
            )
        if self._has_cohort:
            load_check("cohort").check_cohort_fields(
                clients_per_round=self.clients_per_round,
                fraction_per_round=self.fraction_per_round,
                owners=len(self.data_owners),
                min_contributions=self.min_contributions,
                masked=self.masked,
            )
        if self.strategy.name != "fedavg":  # fedavg averages every update: K bounds what it releases
            # K must bound every released value, not only the count of received updates (ReleaseBelowK)
            load_check("release").check_rule_respects_k(
                self.strategy.name,
                self.strategy.params,
                k=self.min_contributions,
                max_updates=self.cohort_size or len(self.data_owners) or None,
            )
        self._check_evaluation()
        if self.secure_aggregation is not None:
            spec = self.secure_aggregation
            if (not spec.enabled or self.dp is None) and spec.noise is not None:
                # no DP noise to place: the field has no effect and stays out of the digest (core/secure_aggregation)
                object.__setattr__(self, "secure_aggregation", dataclasses.replace(spec, noise=None))
        if self.masked:  # a disabled table asks for no masking: nothing to check (plaintext updates)
            load_check("secure_aggregation").check_secure_aggregation(
                self.secure_aggregation,
                owners=len(self.data_owners),
                strategy_name=self.strategy.name,
                strategy_params=self.strategy.params,
                dp=self.dp,
            )

    @property
    def _has_cohort(self) -> bool:
        return self.clients_per_round is not None or self.fraction_per_round is not None

    def _check_evaluation(self) -> None:
        every = self.evaluate_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise JobSpecError(f"evaluate_every: must be an integer >= 0 (0: no owners' evaluation), got {every!r}")
        if every and self.dp is not None:
            # the metrics rule (enclave/metrics.py): a DP job releases no self-reported figures, so none are asked
            raise JobSpecError("evaluate_every: a DP job releases no metrics, owners' evaluation figures included")
        if every and self.masked:
            raise JobSpecError("evaluate_every: a masked job sends no per-owner figures in the clear")

    def evaluates_before(self, round_index: int) -> bool:
        """Whether owners evaluate the model round `round_index` starts from (released after round_index - 1).

        Rounds 1, 1 + N, 1 + 2N, ...: the initial model first, then every N-th released model."""
        return self.evaluate_every > 0 and round_index >= 1 and (round_index - 1) % self.evaluate_every == 0

    @property
    def masked(self) -> bool:
        """Whether owners upload masked updates (secure aggregation inside the enclave)."""
        return self.secure_aggregation is not None and self.secure_aggregation.enabled

    @property
    def cohort_size(self) -> int | None:
        """Owners drawn per round (M), or None: the job has no cohort and every enrolled owner takes part."""
        if not self._has_cohort:
            return None
        size: int | None = load_check("cohort").cohort_size(
            clients_per_round=self.clients_per_round,
            fraction_per_round=self.fraction_per_round,
            owners=len(self.data_owners),
        )
        return size

    def to_canonical(self) -> dict[str, object]:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "train": self.train.to_canonical(),
            "strategy": self.strategy.to_canonical(),
            "min_contributions": self.min_contributions,
            "round_deadline_seconds": self.round_deadline_seconds,
            "max_update_bytes": self.max_update_bytes,
            "data_owners": [o.to_canonical() for o in self.data_owners],
            "model_schema": json.loads(self.model_schema.to_canonical_json()) if self.model_schema else None,
            "initial_model_sha256": self.initial_model_sha256,
            "dp": dict(self.dp) if self.dp is not None else None,
            "extra": dict(self.extra),
            **self._later_fields_canonical(),
        }

    def _later_fields_canonical(self) -> dict[str, object]:
        """Fields added after v1 enter the digest only when they differ from their default (stable digests)."""
        out: dict[str, object] = {}
        if self.model_owner_certificate_pem:
            out["model_owner_certificate_pem"] = self.model_owner_certificate_pem
        if self.on_round_failure != "retry":
            out["on_round_failure"] = self.on_round_failure
        if self.max_round_attempts != 3:
            out["max_round_attempts"] = self.max_round_attempts
        if self.max_examples_per_update != DEFAULT_MAX_EXAMPLES_PER_UPDATE:
            out["max_examples_per_update"] = self.max_examples_per_update
        if self.secure_aggregation is not None:
            out["secure_aggregation"] = self.secure_aggregation.to_canonical()
        if self.base_model is not None:
            out["base_model"] = self.base_model.to_canonical()
        if self.clients_per_round is not None:
            out["clients_per_round"] = self.clients_per_round
        if self.fraction_per_round is not None:
            out["fraction_per_round"] = float(self.fraction_per_round)
        if self.evaluate_every:
            out["evaluate_every"] = self.evaluate_every
        return out

    def canonical_text(self) -> str:
        """The canonical form as text (sorted keys, no whitespace): what the digest hashes and the enclave loads."""
        return json.dumps(self.to_canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    def digest(self) -> bytes:
        """SHA-256 of the canonical form: 32 bytes the enclave binds into its quote."""
        return hashlib.sha256(JOB_DIGEST_DOMAIN + self.canonical_text().encode()).digest()

    def update_size_limit(self) -> int | None:
        if self.max_update_bytes is not None:
            return self.max_update_bytes
        return self.model_schema.nbytes if self.model_schema is not None else None

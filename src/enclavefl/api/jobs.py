"""The model owner writes the job spec every party checks: `make_job`, then `dump_job` to a file.

    job = make_job(name="demo", initial_model=read_initial_model("init.safetensors"),
                   owners={"alice": alice_pem, "bob": bob_pem}, model_owner_certificate=mo_pem,
                   rounds=10, train=TrainConfig(local_steps=5, lr=0.1), min_contributions=2,
                   strategy="centered_clipping", params={"tau": 0.5}, dp_epsilon=8.0)
    Path("job.toml").write_text(dump_job(job))
    masked = make_job(..., masked=True, dp_epsilon=8.0)     # owners add Skellam noise before masking

The aggregation rule is checked against the enclave's registry (a rule that could release a value computed from
fewer than K updates is refused: ReleaseBelowK); DP calibrates its noise to `dp_epsilon`. A masked DP job adds the
noise at the owners, before masking (distributed Skellam noise): its noise multiplier is calibrated, and its epsilon
schedule written, with the Skellam mechanism's accounting (privacy/epsilon.py `job_epsilon_schedule`), so every
owner's `verify_epsilon_schedule` accepts it. `masked_noise="insecure_central"` keeps the enclave's noise after
unmasking (INSECURE against a reader of enclave memory; warned, and refused by owners unless their site opts in).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

from enclavefl.core.job import (
    DEFAULT_MAX_EXAMPLES_PER_UPDATE,
    BaseModelSpec,
    DataOwnerSpec,
    JobSpec,
    StrategySpec,
    TrainConfig,
)
from enclavefl.core.secure_aggregation import INSECURE_CENTRAL_WARNING, SecureAggregationSpec
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.strategies import build_job_strategy
from enclavefl.errors import ConfigError, JobSpecError

if TYPE_CHECKING:
    from enclavefl.privacy.params import AccountantName


def dp_table(
    *,
    epsilon: float | None,
    noise_multiplier: float | None,
    clip_norm: float,
    delta: float,
    accountant: str,
    rounds: int,
) -> dict[str, object] | None:
    """The job's [dp] table: the noise multiplier (given, or calibrated to `epsilon`) and the epsilon per round."""
    if epsilon is None and noise_multiplier is None:
        return None
    if epsilon is not None and noise_multiplier is not None:
        raise ConfigError("give --dp-epsilon or --dp-noise-multiplier, not both")
    if accountant not in ("rdp", "pld"):
        raise ConfigError(f"--dp-accountant {accountant!r}: expected 'rdp' or 'pld'")
    from enclavefl.privacy.epsilon import calibrate_noise_multiplier, dp_params  # dp-accounting: only when asked

    chosen: AccountantName = "pld" if accountant == "pld" else "rdp"
    sigma = noise_multiplier
    if sigma is None:
        assert epsilon is not None
        sigma = calibrate_noise_multiplier(target_epsilon=epsilon, delta=delta, rounds=rounds, accountant=chosen)
    params = dp_params(
        clip_norm=clip_norm,
        noise_multiplier=sigma,
        delta=delta,
        rounds=rounds,
        epsilon_budget=epsilon,
        accountant=chosen,
    )
    return params.to_mapping()


def make_job(
    *,
    name: str,
    initial_model: ModelWeights,
    owners: Mapping[str, str],
    model_owner_certificate: str = "",
    rounds: int = 10,
    train: TrainConfig | None = None,
    min_contributions: int = 2,
    round_deadline_seconds: float = 300.0,
    strategy: str = "fedavg",
    params: Mapping[str, object] | None = None,
    weighted: bool = True,
    on_round_failure: str = "retry",
    max_round_attempts: int = 3,
    dp_epsilon: float | None = None,
    dp_noise_multiplier: float | None = None,
    dp_clip_norm: float = 1.0,
    dp_delta: float = 1e-5,
    dp_accountant: str = "rdp",
    max_examples_per_update: int = DEFAULT_MAX_EXAMPLES_PER_UPDATE,
    base_model: BaseModelSpec | None = None,
    clients_per_round: int | float | str | None = None,
    evaluate_every: int = 0,
    masked: bool = False,
    secure_aggregation: SecureAggregationSpec | None = None,
    masked_noise: str | None = None,
    masked_clip_norm: float | None = None,
) -> JobSpec:
    """A checked job spec, committed to `initial_model`'s schema and hash: the one way to build a job (`job init`).

    `owners` maps each data owner's name to its certificate (PEM text). `strategy` names a rule of the enclave's
    registry and `params` its parameters; fedavg keeps `weighted` (example-weighted mean); with central DP the mean
    is unweighted (the sensitivity of a weighted mean is not the clip norm). `max_round_attempts`: how often a round
    with fewer than K updates is retried under `on_round_failure="retry"`. `base_model`: the frozen base model
    when `initial_model` is only the part that trains and travels (LoRA adapters, say). `clients_per_round`: owners
    the enclave draws per round, a count (20) or a fraction of the enrolled (0.1); None: all, every round.
    `evaluate_every`: every N rounds the owners evaluate the model a round starts from on their held-out data
    (0: never). `masked`: masked mode with safe parameters for the owners enrolled (or `secure_aggregation`'s):
    each owner clips to `masked_clip_norm` (default `dp_clip_norm`) and, with DP, adds its share of Skellam noise
    before masking; `masked_noise="insecure_central"` has the enclave add it after unmasking instead (INSECURE).
    Raises a ConfigError leaf (JobSpecError, ReleaseBelowK, UnsafeSecureAggregation naming the parameter, ...).
    """
    if not owners:
        raise ConfigError("enroll at least one data owner (owners={name: certificate PEM}, --owner NAME=CERT.pem)")
    dp = dp_table(
        epsilon=dp_epsilon,
        noise_multiplier=dp_noise_multiplier,
        clip_norm=dp_clip_norm,
        delta=dp_delta,
        accountant=dp_accountant,
        rounds=rounds,
    )
    spec = _masking(
        owners=len(owners),
        masked=masked,
        given=secure_aggregation,
        noise=masked_noise,
        clip_norm=dp_clip_norm if masked_clip_norm is None else masked_clip_norm,
    )
    if dp is not None or spec is not None:
        weighted = False  # DP and masked mode sum unweighted (privacy/central_dp.py, core/secure_aggregation.py)
    chosen: dict[str, object] = {"weighted": weighted} if strategy == "fedavg" else {}
    chosen.update(params or {})
    count, fraction = cohort_form(clients_per_round)
    job = JobSpec(
        name=name,
        rounds=rounds,
        train=train or TrainConfig(local_steps=5, lr=0.1),
        strategy=StrategySpec(name=strategy, params=chosen),
        min_contributions=min_contributions,
        round_deadline_seconds=round_deadline_seconds,
        data_owners=tuple(DataOwnerSpec(name=owner, certificate_pem=pem) for owner, pem in owners.items()),
        model_owner_certificate_pem=model_owner_certificate,
        model_schema=initial_model.schema,
        initial_model_sha256=initial_model.sha256().hex(),
        on_round_failure=on_round_failure,  # type: ignore[arg-type]  # JobSpec validates it
        dp=dp,
        max_round_attempts=max_round_attempts,
        max_examples_per_update=max_examples_per_update,
        base_model=base_model,
        clients_per_round=count,
        fraction_per_round=fraction,
        evaluate_every=evaluate_every,
        secure_aggregation=spec,
    )
    if job.masked and job.dp is not None:
        job = with_mechanism_schedule(job, calibrated=dp_epsilon is not None)
    build_job_strategy(job)  # the enclave's registry: names, parameters, and no release below K
    return job


def _masking(
    *, owners: int, masked: bool, given: SecureAggregationSpec | None, noise: str | None, clip_norm: float
) -> SecureAggregationSpec | None:
    """The job's masked-mode table: `given`, or safe defaults for `owners` when `masked`; `noise` overrides."""
    spec = given or (SecureAggregationSpec.for_owners(owners, clip_norm=clip_norm) if masked else None)
    if spec is None:
        if noise is not None:
            raise ConfigError("--masked-noise applies to masked jobs: add --masked (masked=True)")
        return None
    if noise is not None:
        if noise not in ("skellam", "insecure_central"):
            raise ConfigError(f"--masked-noise {noise!r}: expected 'skellam' or 'insecure_central'")
        spec = dataclasses.replace(spec, noise="skellam" if noise == "skellam" else "insecure_central")
    if spec.insecure_central_noise:
        warnings.warn(INSECURE_CENTRAL_WARNING, UserWarning, stacklevel=3)
    return spec


def with_mechanism_schedule(job: JobSpec, *, calibrated: bool = False) -> JobSpec:
    """`job` with its dp table's epsilon schedule computed for its noise mechanism (`job_epsilon_schedule`: the
    Skellam accounting when the owners add the noise), the schedule every owner's `verify_epsilon_schedule` accepts.

    `calibrated`: the dp table's noise multiplier was calibrated to its epsilon_budget as a Gaussian's; a Skellam
    job's accounted multiplier is a fixed fraction of its own (privacy/distributed.py), so the multiplier is divided
    by that fraction and the schedule stays within the budget."""
    from enclavefl.privacy.epsilon import accounted_noise_multiplier, job_epsilon_schedule

    if job.dp is None:
        return job
    dp = dict(job.dp)
    spec = job.secure_aggregation
    if calibrated and spec is not None and spec.distributed_noise:
        sigma = float(dp["noise_multiplier"])  # type: ignore[arg-type]  # JobSpec read it as a number
        fraction = accounted_noise_multiplier(job) / sigma  # linear in sigma
        dp["noise_multiplier"] = sigma / fraction * (1 + 1e-9)  # the margin keeps rounding within the budget
        job = dataclasses.replace(job, dp=dp)
    return dataclasses.replace(job, dp={**dp, "epsilon_schedule": list(job_epsilon_schedule(job))})


def cohort_form(clients_per_round: int | float | str | None) -> tuple[int | None, float | None]:
    """The job's (clients_per_round, fraction_per_round) for one `clients_per_round` value of the API or the CLI:
    an integer is a count of owners per round, a number with a point (or "N%") a fraction of the enrolled ones;
    None: no cohort."""
    value: object = clients_per_round
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text) if "." in text else int(text)
        except ValueError:
            raise JobSpecError(
                f"clients_per_round: {text!r} is neither a count (20) nor a fraction (0.1, 10%)"
            ) from None
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(f"clients_per_round: a count or a fraction, got {value!r}")
    return (value, None) if isinstance(value, int) else (None, float(value))

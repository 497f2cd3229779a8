"""From a job's strategy spec to a strategy object (the one place that knows every strategy's name).

    fedavg                                   weighted
    centered_clipping                        tau: the clip radius around last round's step (robust, mixes all)
    median, trimmed_mean, krum, multikrum    robust rules: beta (trimmed_mean), byzantine, select (krum);
                                             bucket_size s: the rule runs on means of random buckets of s
    fedavgm, fedadam, fedyogi, fedadagrad    server optimizers over the (weighted) mean
    job.dp set                               CentralDP around the mean, inside any server optimizer

Every job strategy is checked against K here (enclave/release_support.py): a rule that could release a value
computed from fewer than K updates is refused with ReleaseBelowK, whatever the model owner's tools let through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enclavefl.aggregation import AggregationStrategy, FedAvg
from enclavefl.aggregation.memory import check_memory_budget, enclave_memory_bytes
from enclavefl.core.job import JobSpec, StrategySpec
from enclavefl.enclave.parts import load_part
from enclavefl.enclave.release_support import check_release_support
from enclavefl.enclave.strategy_params import no_leftovers, number
from enclavefl.errors import EnclaveTooSmall, JobSpecError

if TYPE_CHECKING:
    from enclavefl.privacy import DpParams, NoiseSource

# The rules of the optional parts (enclave/parts.py): a job that names none of them loads none of them.
ROBUST = ("median", "trimmed_mean", "krum", "multikrum", "centered_clipping")
SERVER_OPTIMIZERS = ("fedavgm", "fedadam", "fedyogi", "fedadagrad")
_OPTIMIZER_PARAMS = {"fedavgm": ("server_lr", "momentum")} | {
    k: ("eta", "beta1", "beta2", "tau") for k in ("fedadam", "fedyogi", "fedadagrad")
}
KNOWN = ("fedavg", *ROBUST, *SERVER_OPTIMIZERS)


def build_strategy(spec: StrategySpec) -> AggregationStrategy:
    return _build(spec, dp=None, noise=None)


def build_job_strategy(
    job: JobSpec, *, noise: NoiseSource | None = None, bucketing_key: bytes | None = None
) -> AggregationStrategy:
    """The job's strategy, with central DP when `job.dp` is set.

    `noise` and `bucketing_key` (a fixed key for the bucket partition) are injectable for tests and
    reproducible demos only; by default both come fresh from os.urandom.
    """
    dp = load_part("dp").DpParams.from_mapping(job.dp) if job.dp is not None else None
    if dp is not None and len(dp.epsilon_schedule) != job.rounds:
        raise JobSpecError(f"dp.epsilon_schedule has {len(dp.epsilon_schedule)} entries for {job.rounds} rounds")
    strategy = _build(job.strategy, dp=dp, noise=noise, bucketing_key=bucketing_key)
    check_job_release(job, strategy)
    return strategy


def check_job_release(job: JobSpec, strategy: AggregationStrategy) -> None:
    """ReleaseBelowK when `strategy`, run for `job`, can release a value computed from fewer than K updates."""
    check_release_support(strategy, min_contributions=job.min_contributions, max_updates=len(job.data_owners) or None)


def _build(
    spec: StrategySpec, *, dp: DpParams | None, noise: NoiseSource | None, bucketing_key: bytes | None = None
) -> AggregationStrategy:
    params = dict(spec.params)
    name = spec.name
    if name in ROBUST:
        if dp is not None:
            raise JobSpecError(
                f"strategy.name: {name} cannot run with central DP (the noise is calibrated to a sum of clipped "
                "deltas, not to a robust rule's output); use fedavg or a server optimizer"
            )
        robust: AggregationStrategy = load_part("robust").build_robust(name, params, bucketing_key=bucketing_key)
        return robust
    if name != "fedavg" and name not in SERVER_OPTIMIZERS:
        raise JobSpecError(f"strategy.name: unknown strategy {name!r} (known: {', '.join(KNOWN)})")
    weighted = params.pop("weighted", True)
    if not isinstance(weighted, bool):
        raise JobSpecError("strategy.params.weighted: must be true or false")
    hyper = {k: number(params, k) for k in _OPTIMIZER_PARAMS.get(name, ()) if k in params}
    no_leftovers(name, params)
    mean: AggregationStrategy = FedAvg(weighted=weighted)
    if dp is not None:
        if weighted:
            raise JobSpecError(
                "strategy.params.weighted: central DP needs an unweighted mean (an owner's share of a weighted "
                "mean is not bounded by clip_norm); set weighted = false"
            )
        mean = load_part("dp").CentralDP(inner=mean, params=dp, noise=noise)
    if name == "fedavg":
        return mean
    optimizer: AggregationStrategy = load_part("server_optimizer").SERVER_OPTIMIZERS[name](inner=mean, **hyper)
    return optimizer


def job_enclave_bytes(job: JobSpec, *, rpc_workers: int) -> int:
    """Enclave memory a node needs for `job` (aggregation/memory.py's measured formula)."""
    if job.model_schema is None:
        raise JobSpecError("model_schema: the job names no model schema, so its enclave size cannot be derived")
    updates = max(1, len(job.data_owners))
    return enclave_memory_bytes(
        build_job_strategy(job), model_bytes=job.model_schema.nbytes, updates=updates, rpc_workers=rpc_workers
    )


def check_job_fits_enclave(job: JobSpec, *, enclave_bytes: int, rpc_workers: int) -> int:
    """The enclave memory `job` needs; EnclaveTooSmall, with both numbers, when the enclave is smaller."""
    need = job_enclave_bytes(job, rpc_workers=rpc_workers)
    model_bytes = job.model_schema.nbytes if job.model_schema is not None else 0
    if need > enclave_bytes:
        raise EnclaveTooSmall(
            f"job {job.name!r} needs {need / 2**20:.0f} MiB of enclave memory (a {model_bytes / 2**20:.1f}"
            f" MiB model, strategy {job.strategy.name}, {rpc_workers} RPC workers), but this enclave was signed with "
            f"{enclave_bytes / 2**20:.0f} MiB: rebuild the release with `enclavefl enclave init --enclave-size auto`"
        )
    return need


def check_job_memory(job: JobSpec, limit_bytes: int) -> int:
    """Bytes one round of `job` needs; MemoryBudgetExceeded when over the node's limit (checked at submission)."""
    if job.model_schema is None:
        raise JobSpecError("model_schema: the job names no model schema, so its memory cannot be checked")
    updates = max(1, len(job.data_owners))
    return check_memory_budget(build_job_strategy(job), job.model_schema.nbytes, updates, limit_bytes)

"""A whole federation in one process, from the same task the data owners run: for notebooks, tests and demos.

    history = simulate(task, {"bob": bob_data, "alice": alice_data}, rounds=10,
                       train=TrainConfig(local_steps=5, lr=0.1))
    history.metric("train_loss")       # the aggregated train loss after each round
    history.final_model                # ModelWeights, the hash the last verified receipt signs

The node is the deployment's (enclave/node.py's AggregatorNode: its round loop, deadlines, attempts, two-phase
receipts, K), reached through the in-memory transport; each data owner runs the deployment's loop in a thread, and
the model owner's session verifies the receipt chain and the final model. The node runs in an INSECURE simulated
enclave (real-format DCAP quotes signed by a local hierarchy): the protocol is the deployment's, the
confidentiality is not.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enclavefl.api.jobs import cohort_form
from enclavefl.core.cohort import cohort_size
from enclavefl.core.job import BaseModelSpec, DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ConfigError
from enclavefl.owner.metrics_history import RoundRecord
from enclavefl.owner.preflight import check_task_fits, load_owner_data
from enclavefl.owner.round_follower import MetricsLogger
from enclavefl.sim.virtual_training import OwnerPartition, TrainingSpec
from enclavefl.task import Task
from enclavefl.task.optional_torch import require_torch
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.tee.verify.policy import AttestationPolicy

if TYPE_CHECKING:  # torch (and the owners' code that trains) loads in simulate(): the rest imports without it
    import torch

    from enclavefl.owner.data_owner import LocalReport
    from enclavefl.sim.federation import FederationResult, RoundCallback
    from enclavefl.sim.virtual_owners import Progress

PathLike = str | os.PathLike[str]
BACKENDS = ("inprocess", "ray")  # where the owners train: threads in this process, or Ray tasks (enclavefl[ray])


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationHistory:
    """What a simulated federation released: per-round aggregates, the verified receipt chain, the final model."""

    job: JobSpec
    rounds: tuple[RoundSummary, ...]
    receipts: tuple[RoundReceipt, ...]
    final_model: ModelWeights
    tee_backend: str
    tee_insecure: bool
    rejections: Mapping[str, int]

    def metric(self, name: str) -> list[float | None]:
        """One aggregated metric after each round (None where a round did not report it)."""
        return [summary.metrics.get(name) for summary in self.rounds]

    def load_model(self, task: Task) -> torch.nn.Module:
        """The task's model holding the final weights."""
        from enclavefl.core.torch_adapter import load_weights_into

        model = task.create_model()
        load_weights_into(model, self.final_model)
        return model


def simulated_enclave(platform_dir: Path) -> tuple[InsecureSimulationBackend, AttestationPolicy]:
    """An INSECURE simulated enclave and the data owners' policy that accepts exactly it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the caller prints its own INSECURE banner
        platform = SimulatedPlatform.load_or_create(platform_dir)
        backend = InsecureSimulationBackend(platform)
        policy = (
            AttestationPolicy.strict().allow_mrenclave(measure_aggregator_code()).allow_simulation(platform.root_ca_der)
        )
    return backend, policy


def simulation_job(
    initial_model: ModelWeights,
    owners: list[str],
    *,
    rounds: int,
    train: TrainConfig,
    strategy: StrategySpec | None = None,
    min_contributions: int | None = None,
    name: str = "simulation",
    base_model: BaseModelSpec | None = None,
    clients_per_round: int | float | None = None,
) -> JobSpec:
    """A job for `simulate`: every owner enrolled (without keys), K = all owners (all of a round's cohort with
    `clients_per_round`: a count, or a fraction of the owners) unless given; `base_model`: the frozen base under a
    travelling subset (the task model's `frozen_base`)."""
    count, fraction = cohort_form(clients_per_round)
    size = cohort_size(clients_per_round=count, fraction_per_round=fraction, owners=len(owners))
    return JobSpec(
        name=name,
        rounds=rounds,
        train=train,
        strategy=strategy or StrategySpec(name="fedavg", params={"weighted": True}),
        min_contributions=min_contributions if min_contributions is not None else size or len(owners),
        data_owners=tuple(DataOwnerSpec(name=owner) for owner in owners),
        model_schema=initial_model.schema,
        initial_model_sha256=initial_model.sha256().hex(),
        base_model=base_model,
        clients_per_round=count,
        fraction_per_round=fraction,
    )


def simulate(
    task: Task,
    datasets: Mapping[str, Any] | OwnerPartition,
    *,
    rounds: int = 10,
    train: TrainConfig | None = None,
    job: JobSpec | None = None,
    initial_model: ModelWeights | None = None,
    strategy: StrategySpec | None = None,
    min_contributions: int | None = None,
    clients_per_round: int | float | None = None,
    seed: int = 0,
    platform_dir: PathLike | None = None,
    on_round: RoundCallback | None = None,
    on_line: LocalReport | None = None,
    loggers: Iterable[MetricsLogger] = (),
    backend: str = "inprocess",
    ray_address: str | None = None,
    num_cpus_per_owner: float = 1.0,
    num_gpus_per_owner: float = 0.0,
    on_progress: Progress | None = None,
) -> SimulationHistory:
    """Run every round of a federation of `datasets` (owner name -> its data, or an OwnerPartition: N virtual
    owners whose data a function builds from the owner's index, where the owner trains).

    `backend="inprocess"` (default): every owner in this process, one thread each. `backend="ray"` (needs
    'enclavefl[ray]'): each owner's round is a Ray task (`num_cpus_per_owner`, `num_gpus_per_owner`) on a local Ray,
    or on the cluster at `ray_address`; the node stays here and takes the updates one by one as they come back
    (sim/virtual_owners.py), so this process holds about one model whatever the number of owners; `on_progress`
    hears each round's RoundProgress (owners trained, seconds). Same seeds, same results on both backends.

    Each owner's data is TensorData, StreamedData, what the task reads itself, or a path the task's `load_data`
    reads (else a safetensors file). Without `job`, one is made from `rounds`, `train` (default: 5 local steps,
    lr 0.1), `strategy` (weighted FedAvg), `min_contributions` (all owners, or all of a round's cohort) and
    `clients_per_round` (owners the enclave draws per round: a count, or a fraction of the owners; None: all,
    every round; owners outside a round's cohort wait, as in a deployment). The initial model is
    `initial_model`, else the task's model under `torch.manual_seed(seed)`; a model with a frozen base
    (`TrainableSubset`, `PeftAdapters`) names it in the job made here. Each owner's data is checked against the task
    first (DataMismatch, ModelSchemaMismatch, BaseModelMismatch). `on_round` hears each released RoundSummary,
    `on_line` the owners' local lines (their losses). Each of `loggers` (TensorBoardLogger, MlflowLogger, ... from
    enclavefl.owner.metrics_loggers) hears each round's record, as from `job watch`; the caller closes them.
    """
    require_torch("enclavefl.simulate")
    import torch

    from enclavefl.core.torch_adapter import weights_from_module
    from enclavefl.sim.federation import run_federation

    if backend not in BACKENDS:
        raise ConfigError(f"simulate: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(datasets, OwnerPartition):
        partition: OwnerPartition | None = datasets
        names = list(datasets.owner_names())
        # in process, every owner's data is built here, as each thread's would be
        by_name = {name: datasets.data(i) for i, name in enumerate(names)} if backend == "inprocess" else {}
    else:
        partition, names, by_name = None, list(datasets), dict(datasets)
    chosen = list(loggers)
    if chosen:
        on_round = _logged(on_round, chosen)
    if not names:
        raise ConfigError("simulate: give at least one data owner's data")
    model = None
    if initial_model is None:
        torch.manual_seed(seed)
        model = task.create_model()
        initial_model = weights_from_module(model)
    if job is None:
        base: BaseModelSpec | None = getattr(model if model is not None else task.create_model(), "frozen_base", None)
        job = simulation_job(
            initial_model,
            names,
            rounds=rounds,
            train=train or TrainConfig(local_steps=5, lr=0.1),
            strategy=strategy,
            min_contributions=min_contributions,
            base_model=base,
            clients_per_round=clients_per_round,
        )
    elif job.initial_model_sha256 and job.initial_model_sha256 != initial_model.sha256().hex():
        raise ConfigError("simulate: the job commits to another initial model than `initial_model`")
    del model  # a large frozen base is not kept alive through the run
    if backend == "ray":
        return _simulate_on_ray(
            task,
            by_name if partition is None else partition,
            job=job,
            initial_model=initial_model,
            platform_dir=platform_dir,
            on_round=on_round,
            on_progress=on_progress,
            ray=RayOptions(
                address=ray_address, num_cpus_per_owner=num_cpus_per_owner, num_gpus_per_owner=num_gpus_per_owner
            ),
        )
    loaded = {
        name: load_owner_data(task, data) if isinstance(data, str | os.PathLike) else data
        for name, data in by_name.items()
    }
    for name, data in loaded.items():
        check_task_fits(task, job=job, data=data, data_path=f"{name}'s data")
    with tempfile.TemporaryDirectory(prefix="enclavefl-platform-") as tmp:
        tee, policy = simulated_enclave(Path(platform_dir) if platform_dir is not None else Path(tmp))
        result = run_federation(
            job=job,
            task=task,
            datasets=loaded,
            initial_model=initial_model,
            tee=tee,
            policy=policy,
            on_round=on_round,
            report=on_line,
        )
    return _history(job, result)


def _history(job: JobSpec, result: FederationResult) -> SimulationHistory:
    final = result.final_model  # verified by the model owner's session: chain, signatures, the model's hash
    return SimulationHistory(
        job=job,
        rounds=result.summaries,
        receipts=result.final.receipts if result.final is not None else (),
        final_model=final,
        tee_backend=result.tee_backend,
        tee_insecure=result.tee_insecure,
        rejections=result.rejections,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RayOptions:
    address: str | None = None
    num_cpus_per_owner: float = 1.0
    num_gpus_per_owner: float = 0.0


def _simulate_on_ray(
    task: Task,
    datasets: Mapping[str, Any] | OwnerPartition,
    *,
    job: JobSpec,
    initial_model: ModelWeights,
    platform_dir: PathLike | None,
    on_round: RoundCallback | None,
    on_progress: Progress | None,
    ray: RayOptions,
) -> SimulationHistory:
    """simulate(backend="ray"): the owners' rounds as Ray tasks, the node and the owners' protocol here."""
    from enclavefl.sim.ray_trainer import RayTrainer
    from enclavefl.sim.virtual_federation import run_virtual_federation

    # data given by name travels to the owner's task (a path is read there); a partition builds it there
    partition = datasets if isinstance(datasets, OwnerPartition) else OwnerPartition.of(datasets)
    spec = TrainingSpec(task=task, partition=partition, train=job.train)
    trainer = RayTrainer(
        spec, address=ray.address, num_cpus_per_owner=ray.num_cpus_per_owner, num_gpus_per_owner=ray.num_gpus_per_owner
    )
    try:
        with tempfile.TemporaryDirectory(prefix="enclavefl-platform-") as tmp:
            tee, policy = simulated_enclave(Path(platform_dir) if platform_dir is not None else Path(tmp))
            result, _ = run_virtual_federation(
                job=job,
                names=partition.owner_names(),
                trainer=trainer,
                initial_model=initial_model,
                tee=tee,
                policy=policy,
                on_round=on_round,
                on_progress=on_progress,
            )
    finally:
        trainer.close()
    return _history(job, result)


def _logged(on_round: RoundCallback | None, loggers: list[MetricsLogger]) -> RoundCallback:
    def heard(summary: RoundSummary) -> None:
        record = RoundRecord.from_summary(summary)
        for logger in loggers:
            logger.log_round(record)
        if on_round is not None:
            on_round(summary)

    return heard

"""The digits federation: scikit-learn's digits among N data owners with Dirichlet(alpha) label skew.

One call runs the federated job through the real roles (an INSECURE simulated enclave, attested by every
owner), federated evaluation on each owner's held-out data, the model owner's test accuracy per round, and a
centralized baseline trained on the pooled data with the same model and optimizer. Optional: central DP at a
target epsilon, a robust strategy, and one owner sending scaled or sign-flipped updates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from enclavefl.api.jobs import with_mechanism_schedule
from enclavefl.api.simulation import simulated_enclave
from enclavefl.core.codec import decode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.messages import RoundSummary
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.torch_adapter import load_weights_into, weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.demos.digits_data import NUM_CLASSES, NUM_FEATURES, DigitsSplit, load_digits_split
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.strategies import build_job_strategy
from enclavefl.errors import NotEnoughContributions, RoundStateError, UpdateRejected
from enclavefl.privacy.epsilon import calibrate_noise_multiplier, dp_params
from enclavefl.sim.federation import run_federation
from enclavefl.task import EvalResult, Task, TensorData, TorchTask, TrainResult

Attack = Literal["none", "scale", "signflip"]
ATTACK_FACTORS: dict[str, float] = {"scale": 10.0, "signflip": -4.0}  # applied to the attacker's delta
DP_DELTA = 1e-5


def digits_model(hidden: int = 64) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(NUM_FEATURES, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, NUM_CLASSES)
    )


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == target).float().mean())


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, target)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitsConfig:
    rounds: int = 30
    owners: int = 5
    alpha: float = 0.5
    strategy: str = "fedavg"
    strategy_params: dict[str, object] = field(default_factory=dict)
    bucket_size: int | None = None  # robust strategies only: the rule runs on means of random buckets of this size
    dp_epsilon: float | None = None  # target epsilon at DP_DELTA over `rounds`; None: no DP
    clip_norm: float = 1.0
    attack: Attack = "none"
    attacker: int = -1  # index of the attacking owner in owner order (-1: the last one, "owner 5" of 5)
    local_steps: int = 20
    batch_size: int = 32
    lr: float = 0.1
    hidden: int = 64
    seed: int = 0
    baseline_epochs: int = 60  # 0: skip the centralized baseline (tests)
    masked: bool = False  # masked mode (secure aggregation inside the enclave): unweighted fedavg only


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundRecord:
    round: int
    test_accuracy: float  # the model owner's test set
    test_loss: float
    federated: dict[str, float]  # weighted means over the owners' held-out data (>= K owners)
    train_loss: float  # example-weighted mean of the owners' local training losses
    epsilon: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitsReport:
    config: DigitsConfig
    rounds: list[RoundRecord]
    baseline_accuracy: float
    baseline_loss: float
    noise_multiplier: float | None
    stopped_early: str | None  # the privacy budget, or a round without enough valid updates
    label_histogram: dict[str, list[int]]
    tee_insecure: bool

    @property
    def final_accuracy(self) -> float:
        return self.rounds[-1].test_accuracy if self.rounds else float("nan")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self) | {"final_accuracy": self.final_accuracy}, indent=2)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoisonedTask:
    """An attacker's task: trains honestly, then sends global + factor * (local - global)."""

    inner: Task
    factor: float

    def create_model(self) -> torch.nn.Module:
        return self.inner.create_model()

    def train(
        self, model: torch.nn.Module, data: TensorData, config: TrainConfig, *, global_model: torch.nn.Module | None
    ) -> TrainResult:
        # `model` holds the round's global weights now; `global_model` is passed only under FedProx
        start = [p.detach().clone() for p in model.parameters()]
        result = self.inner.train(model, data, config, global_model=global_model)
        with torch.no_grad():
            for p, g in zip(model.parameters(), start, strict=True):
                p.copy_(g + self.factor * (p - g))
        return result

    def evaluate(self, model: torch.nn.Module, data: TensorData) -> EvalResult:
        return self.inner.evaluate(model, data)


def digits_task(hidden: int) -> TorchTask:
    return TorchTask(model_factory=lambda: digits_model(hidden), loss_fn=cross_entropy, metrics={"accuracy": accuracy})


def digits_job(config: DigitsConfig, initial: ModelWeights, names: list[str]) -> tuple[JobSpec, float | None]:
    params: dict[str, object] = dict(config.strategy_params)
    if config.bucket_size is not None:
        params["bucket_size"] = config.bucket_size
    dp: dict[str, object] | None = None
    sigma: float | None = None
    if config.dp_epsilon is not None:
        sigma = calibrate_noise_multiplier(target_epsilon=config.dp_epsilon, delta=DP_DELTA, rounds=config.rounds)
        dp = dp_params(
            clip_norm=config.clip_norm,
            noise_multiplier=sigma,
            delta=DP_DELTA,
            rounds=config.rounds,
            epsilon_budget=config.dp_epsilon,
        ).to_mapping()
        params["weighted"] = False  # the DP mean is unweighted (privacy/central_dp.py says why)
    masking = None
    if config.masked:
        params["weighted"] = False  # masked mode sums unweighted (core/secure_aggregation.py says why)
        # with DP the owners clip to dp's clip_norm; without, a clip far above the deltas changes nothing
        masking = SecureAggregationSpec(
            degree=4,
            threshold=3,
            scale=float(1 << 16),
            modulus_bits=32,
            clip_norm=config.clip_norm if dp is not None else 100.0,
        )
    job = JobSpec(
        name="digits",
        rounds=config.rounds,
        train=TrainConfig(local_steps=config.local_steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed),
        strategy=StrategySpec(name=config.strategy, params=params),
        min_contributions=min(3, len(names)),
        data_owners=tuple(DataOwnerSpec(name=n) for n in names),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        dp=dp,
        secure_aggregation=masking,
    )
    if job.masked and job.dp is not None:  # the owners add Skellam noise before masking: its accounting, same budget
        job = with_mechanism_schedule(job, calibrated=True)
        sigma = float(job.dp["noise_multiplier"])  # type: ignore[index, arg-type]
    return job, sigma


def demo_bucketing_key(seed: int) -> bytes:
    """A bucket-partition key fixed by the seed, so runs repeat (a real node draws os.urandom every round)."""
    return hashlib.sha256(b"enclavefl digits bucketing key/" + str(seed).encode()).digest()


def evaluate_weights(task: TorchTask, weights: ModelWeights, data: TensorData) -> EvalResult:
    model = task.create_model()
    load_weights_into(model, weights)
    return task.evaluate(model, data)


def train_centralized(config: DigitsConfig, initial: ModelWeights, split: DigitsSplit) -> EvalResult:
    """The baseline: the same model, initialisation and optimizer on the pooled training data."""
    task = digits_task(config.hidden)
    model = task.create_model()
    load_weights_into(model, initial)
    train = TrainConfig(
        local_epochs=config.baseline_epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed
    )
    task.train(model, split.pooled_train, train, global_model=None)
    return task.evaluate(model, split.test)


def run_digits(
    config: DigitsConfig,
    *,
    platform_dir: Path | None = None,
    on_round: Callable[[RoundRecord], None] | None = None,
) -> DigitsReport:
    """Run the whole experiment (federation + baseline); deterministic apart from DP noise."""
    # Tensors this small cost more in thread hand-offs than in arithmetic (10x slower on a busy 2-core box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_digits(config, platform_dir=platform_dir, on_round=on_round)
    finally:
        torch.set_num_threads(threads)


def _run_digits(
    config: DigitsConfig, *, platform_dir: Path | None, on_round: Callable[[RoundRecord], None] | None
) -> DigitsReport:
    split = load_digits_split(owners=config.owners, alpha=config.alpha, seed=config.seed)
    names = list(split.owners)
    torch.manual_seed(config.seed)
    task = digits_task(config.hidden)
    initial = weights_from_module(task.create_model())
    job, sigma = digits_job(config, initial, names)
    records: list[RoundRecord] = []
    attacker = names[config.attacker] if config.attack != "none" else None
    nodes: list[AggregatorNode] = []

    def released(summary: RoundSummary) -> None:  # the node's round thread, before the next round opens
        node = nodes[0]
        weights = decode_weights(bytes(node.global_model_bytes(summary.round)))
        test = evaluate_weights(task, weights, split.test)
        receipt = node.receipts()[-1].receipt
        record = RoundRecord(
            round=summary.round,
            test_accuracy=test.metrics["accuracy"],
            test_loss=test.loss,
            federated=federated_evaluation(node, task, weights, split, summary.round),
            train_loss=float(summary.metrics.get("train_loss", float("nan"))),
            epsilon=receipt.cumulative_epsilon,
        )
        records.append(record)
        if on_round is not None:
            on_round(record)

    with tempfile.TemporaryDirectory(prefix="enclavefl-platform-") as tmp:
        backend, policy = simulated_enclave(platform_dir or Path(tmp))
        result = run_federation(
            job=job,
            task=task,
            datasets={name: split.owners[name].train for name in names},
            tasks={attacker: PoisonedTask(inner=task, factor=ATTACK_FACTORS[config.attack])} if attacker else None,
            initial_model=initial,
            tee=backend,
            policy=policy,
            strategy=build_job_strategy(job, bucketing_key=demo_bucketing_key(config.seed)),
            on_round=released,
            on_node=nodes.append,
        )
    baseline = train_centralized(config, initial, split) if config.baseline_epochs > 0 else None
    return DigitsReport(
        config=config,
        rounds=records,
        baseline_accuracy=baseline.metrics["accuracy"] if baseline is not None else float("nan"),
        baseline_loss=baseline.loss if baseline is not None else float("nan"),
        noise_multiplier=sigma,
        stopped_early=result.status.job_message if result.final is None else None,
        label_histogram=split.label_histogram(),
        tee_insecure=backend.is_insecure,
    )


def federated_evaluation(
    node: AggregatorNode, task: TorchTask, weights: ModelWeights, split: DigitsSplit, round_index: int
) -> dict[str, float]:
    """Each owner evaluates the new global model on its held-out data; the node releases means over >= K."""
    worker = node.worker
    if worker is None:
        raise RoundStateError("the node is waiting for the model owner's initial model")
    evaluation = worker.evaluation  # in process only: no RPC serves federated evaluation
    for name, owner in split.owners.items():
        result = evaluate_weights(task, weights, owner.held_out)
        metrics = {"loss": result.loss, **result.metrics}
        try:
            evaluation.submit(name, round_index, result.num_examples, metrics)
        except UpdateRejected:  # a diverged model can give a non-finite loss: that report is refused
            continue
    try:
        return dict(evaluation.close())
    except NotEnoughContributions:
        return {}


def plot_report(report: DigitsReport, path: Path) -> None:
    """A PNG with loss and accuracy per round, the centralized baseline as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in report.rounds]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_loss.plot(rounds, [r.test_loss for r in report.rounds], marker="o", ms=3, label="test loss (global model)")
    ax_loss.plot(
        rounds,
        [r.federated.get("loss", float("nan")) for r in report.rounds],
        marker="s",
        ms=3,
        label="federated eval loss (owners' held-out)",
    )
    ax_loss.plot(rounds, [r.train_loss for r in report.rounds], ls=":", label="local train loss (mean)")
    ax_loss.axhline(report.baseline_loss, color="gray", ls="--", label="centralized baseline")
    ax_loss.set(xlabel="round", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(rounds, [100 * r.test_accuracy for r in report.rounds], marker="o", ms=3, label="test accuracy")
    ax_acc.plot(
        rounds,
        [100 * r.federated.get("accuracy", float("nan")) for r in report.rounds],
        marker="s",
        ms=3,
        label="federated eval accuracy",
    )
    ax_acc.axhline(
        100 * report.baseline_accuracy,
        color="gray",
        ls="--",
        label=f"centralized baseline ({100 * report.baseline_accuracy:.1f}%)",
    )
    ax_acc.set(xlabel="round", ylabel="accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    c = report.config
    title = f"digits: {c.owners} owners, Dirichlet({c.alpha}), {c.strategy}"
    if c.dp_epsilon is not None:
        title += f", DP eps<={c.dp_epsilon:g} (delta={DP_DELTA:g})"
    if c.attack != "none":
        title += f", 1 owner {c.attack}"
    fig.suptitle(title + (" [INSECURE simulated enclave]" if report.tee_insecure else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

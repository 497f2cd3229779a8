"""The fault suite's federation: a small MLP, two data owners with synthetic data, 10 rounds (deterministic)."""

from __future__ import annotations

from pathlib import Path

import torch

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.core.weights import ModelWeights
from enclavefl.task import TensorData, TorchTask
from enclavefl.tee.insecure.simulation import SimulatedPlatform
from enclavefl.tee.verify.policy import AttestationPolicy

OWNERS = ("alice", "bob")
ALL_OWNERS = ("alice", "bob", "carol")  # the rollback-isolation scenarios add a third owner
ROUNDS = 10
CHUNK_BYTES = 1024  # small chunks: an update (~9 KiB) crosses the wire in several messages
INPUTS, HIDDEN, OUTPUTS = 16, 96, 4


def model_factory() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(INPUTS, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, OUTPUTS))


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).mean()


TASK = TorchTask(model_factory=model_factory, loss_fn=mse)


def owner_data(name: str) -> TensorData:
    """Each owner's private synthetic data, the same in every process (seeded by the owner's index)."""
    generator = torch.Generator().manual_seed(1000 + ALL_OWNERS.index(name))
    x = torch.randn(64, INPUTS, generator=generator)
    y = torch.randn(64, OUTPUTS, generator=generator)
    return TensorData(x=x, y=y)


def initial_model() -> ModelWeights:
    torch.manual_seed(7)
    return weights_from_module(model_factory())


def fault_job(
    initial: ModelWeights,
    owner_pems: dict[str, bytes],
    model_owner_pem: bytes,
    *,
    owners: tuple[str, ...] = OWNERS,
    round_deadline_seconds: float = 20.0,
) -> JobSpec:
    return JobSpec(
        name="fault-suite",
        rounds=ROUNDS,
        train=TrainConfig(local_steps=2, lr=0.05, batch_size=16, seed=3),
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        min_contributions=2,
        round_deadline_seconds=round_deadline_seconds,  # rounds close once every owner contributed: the patience
        on_round_failure="retry",
        max_round_attempts=5,
        data_owners=tuple(DataOwnerSpec(name=n, certificate_pem=owner_pems[n].decode()) for n in owners),
        model_owner_certificate_pem=model_owner_pem.decode(),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
    )


def credential_paths(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / f"{name}.key", directory / f"{name}.pem"


def fault_policy(platform_dir: Path) -> AttestationPolicy:
    """INSECURE (simulated evidence): trusts the platform's MRSIGNER, like the sealing key the checkpoints use.

    The suite is about faults, not measurements: pinning MRSIGNER keeps it stable while the code is edited.
    """
    platform = SimulatedPlatform.load_or_create(platform_dir)
    return AttestationPolicy.strict().allow_mrsigner(platform.mrsigner).allow_simulation(platform.root_ca_der)

"""A user's script written against the public API only: `import enclavefl`, nothing private (mypy --strict).

Run as a script it simulates the seed federation and prints the aggregated loss per round; the other functions
show the data owner's, the model owner's and the auditor's calls (tests/api/test_user_script.py type-checks them).
"""

from __future__ import annotations

from pathlib import Path

import torch

import enclavefl
from enclavefl import DataOwnerClient, ModelOwnerClient, SimulationHistory, TensorData, TorchTask, TrainConfig


def linear_model() -> torch.nn.Module:
    return torch.nn.Linear(2, 1)


def squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((prediction - target) ** 2).sum()


TASK = TorchTask(model_factory=linear_model, loss_fn=squared_error)


def owners_data() -> dict[str, TensorData]:
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    return {"bob": TensorData(x=x[:2], y=y[:2]), "alice": TensorData(x=x[2:], y=y[2:])}


def simulation(rounds: int) -> SimulationHistory:
    return enclavefl.simulate(TASK, owners_data(), rounds=rounds, train=TrainConfig(local_steps=5, lr=0.1))


def data_owner(node: str, keys: Path) -> enclavefl.DataOwnerReport:
    with DataOwnerClient(
        node=node,
        job="job.toml",
        policy="policy.toml",
        key=keys / "alice.key",
        cert=keys / "alice.pem",
        state_dir="alice-state",
        on_line=print,
    ) as alice:
        for warning in alice.warnings():
            print(warning)
        try:
            return alice.run(TASK, "alice.safetensors")
        except enclavefl.errors.AttestationError as refused:
            raise SystemExit(f"not sent: {type(refused).__name__}: {refused}") from None


def model_owner(node: str, keys: Path) -> enclavefl.FinalModel:
    with ModelOwnerClient.connect(
        node, job="job.toml", policy="policy.toml", key=keys / "model-owner.key", cert=keys / "model-owner.pem"
    ) as owner:
        owner.submit("init.safetensors")
        for summary in owner.watch():
            print(summary.round, dict(summary.metrics))
        return owner.download("model.safetensors")


def auditor(quote: Path, collateral: Path) -> enclavefl.VerifiedEnclave:
    policy: enclavefl.AttestationPolicy = enclavefl.load_policy(Path("policy.toml"))
    verdict: enclavefl.QuoteVerdict = enclavefl.examine_quote(quote.read_bytes(), collateral.read_text(), policy=policy)
    if verdict.claims is not None:
        print("mrenclave", verdict.claims.mrenclave)
    provenance: enclavefl.Provenance = enclavefl.verify_receipts("model.receipts.json", policy=policy)
    print(len(provenance.receipts), "receipts")
    return enclavefl.verify_quote(quote.read_bytes(), collateral.read_text(), policy=policy)


if __name__ == "__main__":
    history = simulation(rounds=3)
    for loss in history.metric("train_loss"):
        print(f"train_loss {loss:.6f}")
    print(f"receipts {len(history.receipts)} final {history.final_model.sha256().hex()}")

"""What one data owner asks of the node per round, over real gRPC and TLS: the calls a round waits on.

A round's latency is mostly round trips (docs/performance.md, "Round latency"). In steady state an owner makes
two calls per round: its upload, answered once the round is sealed (with the receipt to sign), and its signature,
answered once the round is released with the status of the next round (with the next global model when it is
small; a third call downloads a bigger one). It never asks for the status, the pending receipt or the chain apart
while the node's released head is the receipt it signed itself.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from typing import Any

import pytest
import torch
from transport_harness import Federation

from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import DataOwnerReport, run_data_owner
from enclavefl.task import TensorData, TorchTask
from enclavefl.transport.api import JobState

pytestmark = pytest.mark.filterwarnings("ignore")
ROUNDS = 4
TASK = TorchTask(
    model_factory=lambda: _Model(),
    loss_fn=torch.nn.functional.mse_loss,  # the harness model: w (20, 30), b (30,)
)


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(20, 30))
        self.b = torch.nn.Parameter(torch.zeros(30))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w + self.b


class CountingClient:
    """A NodeClient that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return real(*args, **kwargs)

        return counted


@pytest.mark.parametrize("inline", [True, False], ids=["small-model-inline", "model-downloaded"])
def test_an_owner_makes_two_calls_a_round_and_never_refetches_a_chain_it_signed(
    federation_factory: Any, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    if not inline:  # the harness model (2.5 kB) as if it were big
        monkeypatch.setattr("enclavefl.enclave.node.INLINE_MODEL_BYTES", 0)
    fed: Federation = federation_factory(rounds=ROUNDS, min_contributions=3)
    node = fed.node()
    clients: dict[str, CountingClient] = {}
    reports: dict[str, DataOwnerReport] = {}

    def run(name: str) -> None:
        attested = fed.connect(node, name)
        counting = CountingClient(attested.client)
        clients[name] = counting
        owner = DataOwner(
            name=name,
            task=TASK,
            data=TensorData(x=torch.ones(4, 20), y=torch.ones(4, 30)),
            job=fed.job,
        )
        reports[name] = run_data_owner(owner, dataclasses.replace(attested, client=counting))

    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in fed.owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(report.final_state is JobState.FINISHED for report in reports.values()), reports
    for name, counting in clients.items():
        calls = counting.calls
        assert reports[name].contributed == list(range(1, ROUNDS + 1))
        assert reports[name].receipt_head is not None and reports[name].receipt_head.round == ROUNDS
        assert calls["global_model_bytes"] == (0 if inline else ROUNDS), calls
        assert calls["upload_for_status"] == ROUNDS and calls["acknowledge_for_status"] == ROUNDS, calls
        assert calls["upload_update"] == calls["pending_receipt"] == calls["acknowledge"] == 0, calls
        assert calls["receipts"] == 0, calls  # every released head was the receipt it signed
        assert calls["node_status"] <= 2, calls  # the first round's opening, and the job's end: nothing polls

"""The workload both simulators run (benchmarks/bench_simulation.py): torch and psutil only, no enclavefl, no flwr.

    data = owner_data(7)                  # owner 7's share, generated from its index wherever it runs
    model = make_model(); train(model, data, seed=3)   # the local round: LOCAL_STEPS SGD steps of BATCH examples
    loss = test_loss(model)               # cross-entropy on a pooled held-out set, the figure both sides report

A small classifier (MLP 60 -> 32 -> 10) on synthetic data in the spirit of FedProx's Synthetic(1, 1): each owner
draws its own feature mean and a perturbation of a shared linear labelling rule, with 20 to 80 examples. Both
simulators train each owner the same way (same steps, batch, learning rate); only their seeds for shuffling differ.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import psutil
import torch

FEATURES, HIDDEN, CLASSES = 60, 32, 10
LOCAL_STEPS, BATCH, LR = 10, 10, 0.05
TEST_EXAMPLES = 2000


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, labels)


def _shared_rule() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(12345)
    return torch.randn(FEATURES, CLASSES, generator=g), torch.randn(CLASSES, generator=g)


def owner_data(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Owner `index`'s examples (x, y): its own feature mean and a perturbed copy of the shared rule."""
    g = torch.Generator().manual_seed(1_000_003 * (index + 1))
    w, b = _shared_rule()
    count = int(torch.randint(20, 81, (1,), generator=g))
    mean = 0.5 * torch.randn(FEATURES, generator=g)
    x = mean + torch.randn(count, FEATURES, generator=g)
    w_own = w + 0.3 * torch.randn(FEATURES, CLASSES, generator=g)
    y = torch.argmax(x @ w_own + b, dim=1)
    return x, y


def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    """A pooled held-out set from owners no simulation trains (indices past any run's owners)."""
    xs, ys, index = [], [], 10_000_000
    while sum(len(y) for y in ys) < TEST_EXAMPLES:
        x, y = owner_data(index)
        xs.append(x)
        ys.append(y)
        index += 1
    return torch.cat(xs)[:TEST_EXAMPLES], torch.cat(ys)[:TEST_EXAMPLES]


def test_loss(model: torch.nn.Module) -> float:
    x, y = test_set()
    model.eval()
    with torch.no_grad():
        return float(loss_fn(model(x), y))


def train(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], *, seed: int) -> tuple[int, float]:
    """LOCAL_STEPS SGD steps on shuffled batches of BATCH; (examples, mean loss). Flower's side calls this; enclavefl's
    runs the same steps through its TorchTask (the same loop)."""
    x, y = data
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    model.train()
    order, pos, losses = torch.randperm(len(y), generator=g), 0, []
    for _ in range(LOCAL_STEPS):
        if pos + BATCH > len(y):
            order, pos = torch.randperm(len(y), generator=g), 0
        idx = order[pos : pos + BATCH]
        pos += BATCH
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return len(y), sum(losses) / len(losses)


@dataclass
class MemoryPeaks:
    driver_mib: float = 0.0
    workers_mib: float = 0.0  # the sum over Ray worker processes at the sampled moment of their largest total


class MemorySampler:
    """Samples this process's RSS and the summed RSS of its Ray worker processes (descendants titled "ray::...",
    so another user's Ray on the same machine does not count) every `interval` seconds; the list of descendants is
    refreshed every fifth sample (scanning the process table is what costs, on a busy machine)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.peaks = MemoryPeaks()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process(os.getpid())
        workers: list[psutil.Process] = []
        tick = 0
        while not self._stop.is_set():
            self.peaks.driver_mib = max(self.peaks.driver_mib, me.memory_info().rss / 2**20)
            if tick % 5 == 0:
                workers = [p for p in me.children(recursive=True) if _is_ray_worker(p)]
            tick += 1
            total = 0.0
            for proc in workers:
                try:
                    total += proc.memory_info().rss / 2**20
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peaks.workers_mib = max(self.peaks.workers_mib, total)
            self._stop.wait(self.interval)


def _is_ray_worker(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return bool(cmd) and cmd[0].startswith("ray::")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])

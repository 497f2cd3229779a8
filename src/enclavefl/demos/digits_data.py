"""scikit-learn's bundled digits (8x8, 1,797 images, no download) split among data owners with label skew.

Everything here is deterministic from one seed: a numpy Generator is fine for splitting DATA (it is never
used for DP noise or any secret).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from sklearn.datasets import load_digits

from enclavefl.task import TensorData

NUM_CLASSES = 10
NUM_FEATURES = 64
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerData:
    """One owner's training data and its own held-out data (for federated evaluation)."""

    train: TensorData
    held_out: TensorData


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitsSplit:
    owners: dict[str, OwnerData]
    pooled_train: TensorData  # the union of the owners' training data: the centralized baseline's input
    test: TensorData  # the model owner's test set, disjoint from every owner's data

    def label_histogram(self) -> dict[str, list[int]]:
        return {name: np.bincount(d.train.y.numpy(), minlength=NUM_CLASSES).tolist() for name, d in self.owners.items()}


def owner_names(count: int) -> list[str]:
    return [f"owner{i + 1}" for i in range(count)]


def dirichlet_partition(
    labels: IntArray, *, owners: int, alpha: float, rng: np.random.Generator, min_examples: int | None = None
) -> list[IntArray]:
    """Indices per owner: each class is divided among owners in Dirichlet(alpha) proportions.

    Redrawn (deterministically, from the same generator) until every owner holds at least `min_examples`
    (default: 20, or a quarter of an even share when owners are many).
    """
    if owners < 1 or alpha <= 0:
        raise ValueError("owners must be >= 1 and alpha > 0")
    if min_examples is None:
        min_examples = max(5, min(20, labels.size // (4 * owners)))
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(owners)]
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            rng.shuffle(idx)
            cuts = (np.cumsum(rng.dirichlet(np.full(owners, alpha)))[:-1] * idx.size).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= min_examples:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"no Dirichlet({alpha}) split gives every one of {owners} owners {min_examples} examples")


def _tensors(x: npt.NDArray[np.float32], y: IntArray, idx: IntArray) -> TensorData:
    return TensorData(x=torch.from_numpy(x[idx].copy()), y=torch.from_numpy(y[idx].copy()))


def load_digits_split(
    *, owners: int = 5, alpha: float = 0.5, seed: int = 0, test_fraction: float = 0.2, held_out_fraction: float = 0.2
) -> DigitsSplit:
    """Test set (stratified) apart first, then a Dirichlet(alpha) label-skewed split of the rest among owners."""
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test_idx: list[int] = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        test_idx.extend(int(i) for i in rng.choice(idx, size=round(test_fraction * idx.size), replace=False))
    test = np.sort(np.asarray(test_idx, dtype=np.int64))
    rest = np.setdiff1d(np.arange(y.size), test)
    parts = dirichlet_partition(y[rest], owners=owners, alpha=alpha, rng=rng)
    split: dict[str, OwnerData] = {}
    train_all: list[IntArray] = []
    for name, part in zip(owner_names(owners), parts, strict=True):
        mine = rest[part]
        rng.shuffle(mine)
        n_held = max(1, round(held_out_fraction * mine.size))
        held, train = np.sort(mine[:n_held]), np.sort(mine[n_held:])
        split[name] = OwnerData(train=_tensors(x, y, train), held_out=_tensors(x, y, held))
        train_all.append(train)
    pooled = np.sort(np.concatenate(train_all))
    return DigitsSplit(owners=split, pooled_train=_tensors(x, y, pooled), test=_tensors(x, y, test))

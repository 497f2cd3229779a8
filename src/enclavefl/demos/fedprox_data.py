"""The FedProx paper's Synthetic(alpha, beta) federated data: 30 devices, 60 features, 10 classes.

    fed = synthetic_federation(alpha=1.0, beta=1.0, seed=0)
    fed.devices["device01"].train     # TensorData: x float32 (n, 60), y int64 (n,)
    fed.sample_counts()               # train + test examples per device (lognormal, heavy-tailed)

Source: T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar, V. Smith, "Federated Optimization in
Heterogeneous Networks", MLSys 2020 (arXiv:1812.06127), section 5.1 and appendix C.1, and the authors' generator
`data/synthetic_1_1/generate_synthetic.py` (and `data/synthetic_iid/generate_iid.py`) in github.com/litian96/FedProx.
Device k draws a softmax-regression model y = argmax(softmax(W_k x + b_k)) with W_k, b_k ~ N(u_k, 1),
u_k ~ N(0, alpha) (how much the local models differ), and inputs x ~ N(v_k, Sigma) with v_k ~ N(B_k, 1),
B_k ~ N(0, beta) (how much the local data differ) and Sigma diagonal, Sigma_jj = j^-1.2. The paper calls the sample
counts "power law"; the authors' code draws them as int(lognormal(4, 2)) + 50, which is what this follows. Each
device's examples are shuffled and split 90% train / 10% test, as the authors' script does. `iid=True` is their
Synthetic-IID: one model W, b ~ N(0, 1) for all, and x ~ N(0, Sigma) everywhere.

Differences from the authors' script, none of which changes the distribution: a numpy Generator from one seed
replaces the global np.random state; x is drawn as v_k + sqrt(diag(Sigma)) * z (exact for a diagonal Sigma) instead
of through `multivariate_normal`; argmax of the logits replaces argmax of their softmax (the same label).

Everything here is deterministic from one seed: a numpy Generator is fine for generating DATA (it is never used for
DP noise, masks or any secret).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from enclavefl.task import TensorData

NUM_DEVICES = 30
NUM_FEATURES = 60
NUM_CLASSES = 10
TRAIN_FRACTION = 0.9  # the authors' split: int(0.9 n) examples to train, the rest to test
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceData:
    """One device's examples: its training part and its test part."""

    train: TensorData
    test: TensorData


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticFederation:
    """Synthetic(alpha, beta) (or Synthetic-IID): the devices' data, in device order."""

    alpha: float
    beta: float
    iid: bool
    seed: int
    devices: dict[str, DeviceData]

    def sample_counts(self) -> list[int]:
        """Examples per device (train + test), as generated."""
        return [len(d.train) + len(d.test) for d in self.devices.values()]

    def pooled(self, part: str) -> TensorData:
        """Every device's `part` ("train" or "test") in one set: what the paper's global loss and accuracy are
        computed on (example-weighted over devices)."""
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        sets = [getattr(d, part) for d in self.devices.values()]
        return TensorData(x=torch.cat([s.x for s in sets]), y=torch.cat([s.y for s in sets]))


def device_names(count: int) -> list[str]:
    return [f"device{i + 1:02d}" for i in range(count)]


def feature_variances() -> FloatArray:
    """The diagonal of Sigma: j^-1.2 for features j = 1..60."""
    return np.power(np.arange(1, NUM_FEATURES + 1, dtype=np.float64), -1.2)


def synthetic_federation(
    *, alpha: float, beta: float, seed: int = 0, iid: bool = False, devices: int = NUM_DEVICES
) -> SyntheticFederation:
    """Synthetic(alpha, beta) of the FedProx paper (`iid=True`: Synthetic-IID, alpha and beta unused)."""
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha!r}, beta={beta!r}")
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices!r}")
    rng = np.random.default_rng(seed)
    counts = rng.lognormal(4, 2, devices).astype(np.int64) + 50
    scale = np.sqrt(feature_variances())
    if iid:
        shared_w = rng.normal(0.0, 1.0, (NUM_FEATURES, NUM_CLASSES))
        shared_b = rng.normal(0.0, 1.0, NUM_CLASSES)
        input_means = np.zeros((devices, NUM_FEATURES))
    else:
        model_means = rng.normal(0.0, alpha, devices)  # u_k: the mean of W_k and of b_k
        data_centres = rng.normal(0.0, beta, devices)  # B_k
        input_means = np.stack([rng.normal(c, 1.0, NUM_FEATURES) for c in data_centres])  # v_k
    out: dict[str, DeviceData] = {}
    for k, name in enumerate(device_names(devices)):
        if iid:
            w, b = shared_w, shared_b
        else:
            w = rng.normal(model_means[k], 1.0, (NUM_FEATURES, NUM_CLASSES))
            b = rng.normal(model_means[k], 1.0, NUM_CLASSES)
        x = input_means[k] + scale * rng.standard_normal((int(counts[k]), NUM_FEATURES))
        y = np.argmax(x @ w + b, axis=1)
        out[name] = split_device(x, y, rng)
    return SyntheticFederation(alpha=alpha, beta=beta, iid=iid, seed=seed, devices=out)


def split_device(x: FloatArray, y: npt.NDArray[np.int64], rng: np.random.Generator) -> DeviceData:
    """Shuffle one device's examples, then int(0.9 n) to train and the rest to test."""
    order = rng.permutation(len(y))
    cut = int(TRAIN_FRACTION * len(y))
    xt = torch.from_numpy(x[order].astype(np.float32))
    yt = torch.from_numpy(y[order].astype(np.int64))
    return DeviceData(train=TensorData(x=xt[:cut], y=yt[:cut]), test=TensorData(x=xt[cut:], y=yt[cut:]))

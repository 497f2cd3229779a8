"""The attack: K counts received updates, but Krum and the median release ONE owner's values. Now refused.

Three owners send distinguishable updates (all 1s, all 2s, all 4s) to a real SecureWorker. With the K check
switched off (as it was before), the median with K = 3 releases owner b's update exactly and Krum with K = 2
releases one owner's update exactly: a colluding model owner reads it off the released model. With the check on,
the job is refused when it is made, when a job file is loaded, and by the enclave itself when handed a spec that
skipped the model owner's validation (or a strategy object injected directly).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from two_phase import close_and_release

from enclavefl.aggregation import FedAvg
from enclavefl.aggregation.robust import CoordinateMedian, Krum
from enclavefl.api.jobs import make_job
from enclavefl.core.codec import encode_weights
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import ReleaseBelowK
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.transport.owner_tls import OwnerCredentials

OWNER_VALUES = {"a": 1.0, "b": 2.0, "c": 4.0}
INITIAL = ModelWeights({"w": np.zeros((4, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)})
ATTACKS = [  # (rule, params, K): each releases a value computed from fewer than K updates
    ("median", {}, 3),
    ("krum", {"byzantine": 0}, 2),
    ("multikrum", {"byzantine": 0, "select": 2}, 3),
    ("trimmed_mean", {"beta": 0.34}, 3),  # n = 3 trims 1 per side: the middle update alone
    ("median", {"bucket_size": 2}, 3),  # with 5 enrolled owners: 2 buckets of 3 and 2, the median keeps one
]
ENROLLED = ("a", "b", "c", "d", "e")  # the enrolled list; only a, b and c upload in the attack rounds


def owner_update(value: float) -> ModelWeights:
    return ModelWeights({name: np.full(a.shape, value, dtype=a.dtype) for name, a in INITIAL.items()})


def job(name: str, params: Mapping[str, object], k: int) -> JobSpec:
    return JobSpec(
        name="k-release",
        rounds=1,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name=name, params=params),
        min_contributions=k,
        data_owners=tuple(DataOwnerSpec(name=o) for o in ENROLLED),
        model_schema=INITIAL.schema,
        initial_model_sha256=INITIAL.sha256().hex(),
    )


def unvalidated_job(name: str, params: Mapping[str, object], k: int) -> JobSpec:
    """A spec that skipped the model owner's validation (a hand-made file, another tool): swapped in afterwards."""
    spec = job("fedavg", {"weighted": True}, k)
    object.__setattr__(spec, "strategy", StrategySpec(name=name, params=params))
    return spec


def run_one_round(worker: SecureWorker) -> ModelWeights:
    round_index = worker.open_round()
    for owner, value in OWNER_VALUES.items():
        payload = encode_weights(owner_update(value))
        worker.submit_update(
            UpdateMessage.of(owner=owner, round=round_index, num_examples=10, payload=payload).incoming()
        )
    close_and_release(worker)
    return worker.global_model


def equals_one_owner(released: ModelWeights) -> str | None:
    for owner, value in OWNER_VALUES.items():
        if all(np.array_equal(released[n], owner_update(value)[n]) for n in released):
            return owner
    return None


@pytest.mark.parametrize(("name", "params", "k"), [ATTACKS[0], ATTACKS[1]], ids=["median-K3", "krum-K2"])
def test_without_the_k_check_the_released_model_is_one_owners_update_exactly(
    monkeypatch: pytest.MonkeyPatch,
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
    name: str,
    params: dict[str, object],
    k: int,
) -> None:
    # the attack as it worked before: switch both checks off, run the real worker
    monkeypatch.setattr("enclavefl.enclave.strategies.check_job_release", lambda job, strategy: None)
    monkeypatch.setattr("enclavefl.enclave.worker.check_job_release", lambda job, strategy: None)
    worker = SecureWorker(job=unvalidated_job(name, params, k), initial_model=INITIAL)

    released = run_one_round(worker)

    assert worker.receipts[-1].receipt.contributions == 3 >= k  # K was "met"
    assert equals_one_owner(released) is not None  # ... and one owner's update left the enclave, bit for bit
    if name == "median":
        assert equals_one_owner(released) == "b"


@pytest.mark.parametrize(("name", "params", "k"), ATTACKS, ids=[f"{a[0]}-{a[1]}-K{a[2]}" for a in ATTACKS])
def test_the_job_spec_refuses_a_rule_that_releases_fewer_than_k_updates(
    name: str, params: dict[str, object], k: int
) -> None:
    with pytest.raises(ReleaseBelowK, match=f"fewer than K = {k}"):
        job(name, params, k)


def certificates() -> dict[str, str]:
    return {o: OwnerCredentials.generate(o).certificate_pem.decode() for o in OWNER_VALUES}


def test_job_init_refuses_median_and_says_why() -> None:
    with pytest.raises(ReleaseBelowK, match="one of the updates, exactly"):
        make_job(
            name="j",
            rounds=1,
            initial_model=INITIAL,
            train=TrainConfig(local_steps=1),
            owners=certificates(),
            min_contributions=3,
            strategy="median",
        )


def test_loading_a_hand_written_job_file_with_krum_and_k2_is_refused(tmp_path: Path) -> None:
    fedavg = make_job(
        name="j",
        rounds=1,
        initial_model=INITIAL,
        train=TrainConfig(local_steps=1),
        owners=certificates(),
        min_contributions=2,
    )
    text = dump_job(fedavg)
    text = text.replace('name = "fedavg"\nparams = {"weighted" = true}', 'name = "krum"\nparams = {"byzantine" = 0}')
    assert 'name = "krum"' in text
    (tmp_path / "job.toml").write_text(text)

    with pytest.raises(ReleaseBelowK, match="verbatim"):
        load_job(tmp_path / "job.toml")


@pytest.mark.parametrize(("name", "params", "k"), ATTACKS, ids=[f"{a[0]}-{a[1]}-K{a[2]}" for a in ATTACKS])
def test_the_enclave_refuses_a_spec_that_skipped_validation(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], name: str, params: dict[str, object], k: int
) -> None:
    spec = unvalidated_job(name, params, k)

    with pytest.raises(ReleaseBelowK, match="the enclave refuses the job"):
        SecureWorker(job=spec, initial_model=INITIAL)
    with pytest.raises(ReleaseBelowK):  # the node refuses it before serving anyone
        AggregatorNode(job=spec, tee=sim_enclave[0])


@pytest.mark.parametrize("strategy", [CoordinateMedian(), Krum(byzantine=0, select=1)], ids=["median", "krum"])
def test_the_worker_refuses_an_injected_strategy_that_releases_fewer_than_k(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], strategy: object
) -> None:
    with pytest.raises(ReleaseBelowK):
        SecureWorker(job=job("fedavg", {"weighted": True}, 2), initial_model=INITIAL, strategy=strategy)  # type: ignore[arg-type]


class Opaque:
    """Quacks like a strategy, but the enclave cannot tell what its released values mix."""

    name = "opaque"
    holds_all_updates = False

    def parameters(self) -> dict[str, object]:
        return {}

    def peak_memory_bytes(self, *, model_bytes: int, updates: int) -> int:
        return model_bytes

    def start_round(self, global_model: ModelWeights) -> object:
        return FedAvg().start_round(global_model)


def test_an_unknown_strategy_object_is_refused_by_the_enclave(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    with pytest.raises(ReleaseBelowK, match="cannot tell"):
        SecureWorker(
            job=job("fedavg", {}, 1),
            initial_model=INITIAL,
            strategy=Opaque(),  # type: ignore[arg-type]
        )


def test_allowed_robust_rules_still_run_and_mix_at_least_k_updates(
    sim_enclave: tuple[TeeBackend, AttestationPolicy],
) -> None:
    for name, params, k in [
        ("multikrum", {"byzantine": 0, "select": 3}, 3),
        ("krum", {"byzantine": 0}, 1),
        ("centered_clipping", {"tau": 100.0}, 3),
    ]:
        worker = SecureWorker(job=job(name, params, k), initial_model=INITIAL)

        released = run_one_round(worker)

        if k > 1:
            assert equals_one_owner(released) is None
            np.testing.assert_allclose(released["w"], np.full((4, 3), 7.0 / 3), rtol=1e-6)  # the mean of all three

"""Server optimizers: one step equals the published update rule; state survives a state_dict round trip."""

from __future__ import annotations

import numpy as np
import pytest
from dp_tables import dp_table

from enclavefl.aggregation import FedAvg
from enclavefl.aggregation.server_opt import FedAdagrad, FedAdam, FedAvgM, FedYogi, ServerOptimizer
from enclavefl.core.job import JobSpec, StrategySpec, TrainConfig
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.strategies import build_job_strategy, build_strategy
from enclavefl.errors import JobSpecError
from enclavefl.privacy import CentralDP

BASE = np.array([0.5, -1.0, 2.0], dtype=np.float32)


def model(w: np.ndarray) -> ModelWeights:
    return ModelWeights({"w": np.asarray(w, dtype=np.float32), "steps": np.array(3, dtype=np.int64)})


def one_round(opt: ServerOptimizer, base: ModelWeights, updates: list[np.ndarray]) -> ModelWeights:
    rnd = opt.start_round(base)
    for u in updates:
        rnd.fold_inplace(model(u), weight=1.0)
    return rnd.finalize()


UPDATES = [BASE + np.array([0.1, 0.2, -0.3], dtype=np.float32), BASE + np.array([0.3, 0.0, -0.1], dtype=np.float32)]
DELTA = np.array([0.2, 0.1, -0.2])


def test_fedavgm_without_momentum_and_unit_lr_is_fedavg() -> None:
    opt = FedAvgM(inner=FedAvg(weighted=False), server_lr=1.0, momentum=0.0)

    result = one_round(opt, model(BASE), UPDATES)

    np.testing.assert_allclose(result["w"], BASE + DELTA, rtol=1e-6)
    assert result["steps"] == 3


def test_fedavgm_accumulates_momentum_across_rounds() -> None:
    opt = FedAvgM(inner=FedAvg(weighted=False), server_lr=0.5, momentum=0.9)
    first = one_round(opt, model(BASE), UPDATES)

    second = one_round(opt, first, [np.asarray(first["w"]) + DELTA.astype(np.float32)] * 2)

    np.testing.assert_allclose(first["w"], BASE + 0.5 * DELTA, rtol=1e-6)
    np.testing.assert_allclose(second["w"], first["w"] + 0.5 * (0.9 * DELTA + DELTA), rtol=1e-5)


@pytest.mark.parametrize(
    ("cls", "second_moment"),
    [
        (FedAdam, lambda v0, d2, b2: b2 * v0 + (1 - b2) * d2),
        (FedYogi, lambda v0, d2, b2: v0 - (1 - b2) * d2 * np.sign(v0 - d2)),
        (FedAdagrad, lambda v0, d2, b2: v0 + d2),
    ],
)
def test_adaptive_optimizers_take_the_published_first_step(cls: type, second_moment: object) -> None:
    eta, b1, b2, tau = 0.05, 0.9, 0.99, 1e-3
    opt = cls(inner=FedAvg(weighted=False), eta=eta, beta1=b1, beta2=b2, tau=tau)

    result = one_round(opt, model(BASE), UPDATES)

    m = (1 - b1) * DELTA
    v = second_moment(tau**2, DELTA**2, b2)  # type: ignore[operator]
    np.testing.assert_allclose(result["w"], BASE + eta * m / (np.sqrt(v) + tau), rtol=1e-5)
    assert opt.steps == 1


def test_state_dict_round_trip_gives_the_same_next_step() -> None:
    original = FedAdam(inner=FedAvg(weighted=False), eta=0.05)
    after_one = one_round(original, model(BASE), UPDATES)
    restored = FedAdam(inner=FedAvg(weighted=False), eta=0.05)

    restored.load_state_dict(original.state_dict())
    a = one_round(original, after_one, UPDATES)
    b = one_round(restored, after_one, UPDATES)

    np.testing.assert_array_equal(a["w"], b["w"])
    assert restored.steps == original.steps == 2
    assert set(original.state_dict()) == {"m/w", "v/w", "__step__"}


def test_loading_a_state_without_a_step_count_is_refused() -> None:
    with pytest.raises(JobSpecError):
        FedAdam(inner=FedAvg()).load_state_dict(ModelWeights({"m/w": np.zeros(3)}))


@pytest.mark.parametrize(
    ("name", "cls"), [("fedavgm", FedAvgM), ("fedadam", FedAdam), ("fedyogi", FedYogi), ("fedadagrad", FedAdagrad)]
)
def test_job_strategy_names_build_server_optimizers_over_the_mean(name: str, cls: type) -> None:
    strategy = build_strategy(StrategySpec(name=name, params={"weighted": True}))

    assert isinstance(strategy, cls)
    assert strategy.inner == FedAvg(weighted=True)  # type: ignore[attr-defined]
    assert strategy.parameters()["inner"] == "fedavg"


def test_with_dp_the_noise_is_added_inside_the_server_optimizer() -> None:
    job = JobSpec(
        name="dp-adam",
        rounds=3,
        train=TrainConfig(local_steps=1),
        strategy=StrategySpec(name="fedadam", params={"weighted": False, "eta": 0.01}),
        dp=dp_table(3),
    )

    strategy = build_job_strategy(job)

    assert isinstance(strategy, FedAdam)
    assert isinstance(strategy.inner, CentralDP)
    assert strategy.hyper["eta"] == 0.01


@pytest.mark.parametrize(
    "spec",
    [
        StrategySpec(name="fedadam", params={"beta1": 1.0}),
        StrategySpec(name="fedyogi", params={"tau": 0.0}),
        StrategySpec(name="fedavgm", params={"momentum": -0.1}),
        StrategySpec(name="fedadam", params={"lr": 0.1}),
        StrategySpec(name="fedsomething", params={}),
    ],
)
def test_invalid_server_optimizer_specs_are_refused(spec: StrategySpec) -> None:
    with pytest.raises(JobSpecError):
        build_strategy(spec)

"""Which rule/K combinations the job spec refuses (ReleaseBelowK), and that the enclave's own check agrees."""

from __future__ import annotations

import itertools

import pytest

from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.release_check import check_rule_respects_k
from enclavefl.enclave.release_support import check_release_support
from enclavefl.enclave.strategies import build_strategy
from enclavefl.errors import JobSpecError, ReleaseBelowK


def refused(name: str, params: dict[str, object], k: int, enrolled: int | None) -> bool:
    try:
        check_rule_respects_k(name, params, k=k, max_updates=enrolled)
    except ReleaseBelowK:
        return True
    return False


@pytest.mark.parametrize(
    ("name", "params", "k", "enrolled", "is_refused"),
    [
        ("krum", {}, 1, 5, False),  # K = 1 promises nothing more than one update
        ("krum", {}, 2, 5, True),  # one owner's model, verbatim
        ("median", {}, 2, 5, True),
        ("median", {}, 3, None, True),
        ("multikrum", {"select": 2}, 3, 5, True),
        ("multikrum", {"select": 3}, 3, 5, False),
        ("multikrum", {}, 2, 5, False),  # default select 2
        ("trimmed_mean", {"beta": 0.2}, 3, 5, False),  # n = 3, 4, 5 keep 3, 4, 3
        ("trimmed_mean", {"beta": 0.2}, 4, 6, True),  # n = 5 trims 1 per side: 3 < 4
        ("trimmed_mean", {"beta": 0.3}, 3, 3, False),  # n = 3 only: floor(0.9) = 0 trimmed
        ("trimmed_mean", {"beta": 0.3}, 3, 4, True),  # n = 4 trims 1 per side: 2 < 3, though n = 3 was fine
        ("trimmed_mean", {"beta": 0.34}, 3, 5, True),  # n = K = 3 already trims 1: beta must be < 1/K
        ("median", {"bucket_size": 2}, 3, 5, True),  # n = 5: buckets of 3 and 2, the median keeps one
        ("median", {"bucket_size": 3}, 3, 7, False),  # buckets of >= 3
        ("krum", {"byzantine": 0, "bucket_size": 2}, 2, 8, False),  # one bucket mean of >= 2 updates
        ("multikrum", {"byzantine": 0, "select": 2, "bucket_size": 2}, 3, 5, False),  # 2 bucket means of >= 2
        ("fedavg", {"weighted": True}, 5, 5, False),
        ("centered_clipping", {"tau": 1.0}, 5, 5, False),
        ("fedadam", {}, 3, None, False),
    ],
)
def test_rules_whose_released_values_can_mix_fewer_than_k_updates_are_refused(
    name: str, params: dict[str, object], k: int, enrolled: int | None, is_refused: bool
) -> None:
    assert refused(name, params, k, enrolled) is is_refused


def test_the_trimmed_mean_is_checked_for_every_round_size_from_k_to_the_enrolled_owners() -> None:
    # beta 0.25, K = 3: n = 3 keeps 3, n = 4 keeps 2 (refused), n = 5 keeps 3: only a check over every n sees it
    check_rule_respects_k("trimmed_mean", {"beta": 0.25}, k=3, max_updates=3)
    with pytest.raises(ReleaseBelowK, match="with n = 4 updates it trims"):
        check_rule_respects_k("trimmed_mean", {"beta": 0.25}, k=3, max_updates=5)


def test_the_job_spec_runs_the_check_with_its_k_and_enrolled_owners() -> None:
    def job(k: int, owners: int) -> JobSpec:
        return JobSpec(
            name="j",
            rounds=1,
            train=TrainConfig(local_steps=1),
            min_contributions=k,
            strategy=StrategySpec(name="trimmed_mean", params={"beta": 0.3}),
            data_owners=tuple(DataOwnerSpec(name=f"o{i}") for i in range(owners)),
        )

    job(3, 3)
    with pytest.raises(ReleaseBelowK):
        job(3, 4)


def test_a_malformed_parameter_of_a_checked_rule_names_the_field() -> None:
    with pytest.raises(JobSpecError, match=r"strategy\.params\.beta"):
        check_rule_respects_k("trimmed_mean", {"beta": "lots"}, k=2, max_updates=5)


GRID = [
    *[("median", {"bucket_size": s} if s else {}) for s in (None, 1, 2, 3, 4)],
    *[
        ("trimmed_mean", {"beta": b, **({"bucket_size": s} if s else {})})
        for b in (0.1, 0.2, 0.3, 0.45)
        for s in (None, 2, 3)
    ],
    *[("krum", {"byzantine": 0, **({"bucket_size": s} if s else {})}) for s in (None, 2, 3)],
    *[
        ("multikrum", {"byzantine": 0, "select": m, **({"bucket_size": s} if s else {})})
        for m in (2, 3, 4)
        for s in (None, 2)
    ],
    ("centered_clipping", {"tau": 0.5}),
    ("fedavg", {"weighted": False}),
]


@pytest.mark.parametrize(("name", "params"), GRID, ids=[f"{n}-{p}" for n, p in GRID])
def test_the_spec_check_and_the_enclaves_object_check_agree(name: str, params: dict[str, object]) -> None:
    # two implementations (the spec's words, the built objects): neither may let through what the other refuses
    strategy = build_strategy(StrategySpec(name=name, params=params))
    for k, enrolled in itertools.product((1, 2, 3, 4, 5), (5, 6, 7, 9)):
        by_spec = refused(name, params, k, enrolled)
        try:
            check_release_support(strategy, min_contributions=k, max_updates=enrolled)
            by_enclave = False
        except ReleaseBelowK:
            by_enclave = True
        assert by_spec == by_enclave, (k, enrolled)

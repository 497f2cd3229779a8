"""A strategy chain's state that a checkpoint carries: the DP accountant's rounds and a server optimizer's state.

accountant, optimizer = strategy_state(strategy)          # into NodeCheckpoint.accountant_state / strategy_state
restore_strategy_state(strategy, accountant, optimizer)   # after a restart (CheckpointError if it does not fit)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from enclavefl.aggregation import AggregationStrategy
from enclavefl.aggregation.base import CarriesState, SpendsPrivacy
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import CheckpointError, EnclaveFLError

_DP_ROUNDS: Final = "dp_rounds_released"


def strategy_state(strategy: AggregationStrategy) -> tuple[dict[str, object], ModelWeights | None]:
    """(accountant state, server-optimizer state) of a strategy chain (wrappers are followed through `.inner`)."""
    accountant: dict[str, object] = {}
    optimizer: ModelWeights | None = None
    for layer in _layers(strategy):
        if isinstance(layer, CarriesState):  # a server optimizer's m, v / the centered-clipping center's history
            optimizer = layer.state_dict()
        elif isinstance(layer, SpendsPrivacy):  # central DP's accountant
            accountant[_DP_ROUNDS] = layer.rounds_released
    return accountant, optimizer


def restore_strategy_state(
    strategy: AggregationStrategy, accountant: Mapping[str, object], optimizer: ModelWeights | None
) -> None:
    """Put back what `strategy_state` returned; CheckpointError if the state does not fit this strategy."""
    layers = _layers(strategy)
    dp = next((x for x in layers if isinstance(x, SpendsPrivacy)), None)
    server = next((x for x in layers if isinstance(x, CarriesState)), None)
    if (dp is None) != (_DP_ROUNDS not in accountant) or (server is None) != (optimizer is None):
        raise CheckpointError("the checkpoint's accountant/optimizer state does not fit the job's strategy")
    if dp is not None:
        rounds = accountant[_DP_ROUNDS]
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise CheckpointError(f"checkpoint: {_DP_ROUNDS} must be an integer >= 0, got {rounds!r}")
        dp.resume_accounting(rounds)
    if server is not None and optimizer is not None:
        try:
            server.load_state_dict(optimizer)
        except EnclaveFLError as exc:
            raise CheckpointError(f"checkpoint: server optimizer state: {exc}") from None


def _layers(strategy: AggregationStrategy) -> list[object]:
    layers: list[object] = []
    layer: object = strategy
    while layer is not None:
        layers.append(layer)
        layer = getattr(layer, "inner", None)
    return layers

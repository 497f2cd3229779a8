"""Aggregation strategies: streaming FedAvg and the Protocol later strategies plug into."""

from enclavefl.aggregation.base import AggregationStrategy, RoundAggregator
from enclavefl.aggregation.fedavg import FedAvg, FedAvgRound

__all__ = ["AggregationStrategy", "FedAvg", "FedAvgRound", "RoundAggregator"]

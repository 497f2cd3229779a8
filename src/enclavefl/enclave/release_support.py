"""The enclave's own check that K bounds what leaves, on the strategy objects it will actually run.

    check_release_support(strategy, min_contributions=3, max_updates=5)   # ReleaseBelowK for CoordinateMedian()

The job spec is checked when it is made and loaded (core/release_check.py), but the enclave does not trust the
model owner's tools: a hand-written job file, or a strategy object handed to the worker directly, meets this
check, which reads the built rule (and every wrapper around it) rather than the spec's words: each strategy states
how many updates its released values mix (`updates_behind_each_value`, beside its rule in aggregation/ and
privacy/), so the robust rules, server optimizers and DP load only for the jobs that use them (enclave/parts.py).
A strategy that does not state it is refused: the enclave releases nothing it cannot vouch for.
"""

from __future__ import annotations

from enclavefl.aggregation import AggregationStrategy
from enclavefl.aggregation.base import updates_behind_each_value
from enclavefl.core.job import OPEN_JOB_HORIZON
from enclavefl.errors import ReleaseBelowK

_RULES = (
    "Allowed with K > 1: krum never (it keeps one update), multikrum when its selection is >= K, the trimmed mean "
    "when n - 2 floor(beta n) >= K for every round size n between K and the enrolled owners, bucketing when "
    "bucket_size >= K; the median never. centered_clipping and fedavg average every update."
)


def check_release_support(strategy: AggregationStrategy, *, min_contributions: int, max_updates: int | None) -> None:
    """ReleaseBelowK unless every round size from K to `max_updates` (enrolled owners) releases mixes of >= K."""
    if min_contributions <= 1:
        updates_behind_each_value(strategy, 1)  # K = 1 bounds nothing, but an unknown rule is still refused
        return
    largest = max(min_contributions, max_updates if max_updates is not None else OPEN_JOB_HORIZON)
    for updates in range(min_contributions, largest + 1):
        support = updates_behind_each_value(strategy, updates)
        if support < min_contributions:
            rule = f"strategy {strategy.name} ({dict(strategy.parameters())})"
            raise ReleaseBelowK(
                f"{rule}: with {updates} updates a released value is computed from {support} of them, fewer than "
                f"K = {min_contributions}; the enclave refuses the job. {_RULES}"
            )

"""The robust rules, an optional part of the enclave (enclave/parts.py): loaded only by a job that names one.

    strategy = load_part("robust").build_robust("trimmed_mean", {"beta": 0.2}, bucketing_key=None)

median, trimmed_mean, krum and multikrum (each optionally over random buckets: bucket_size) and
centered_clipping. enclave/strategies.py decides that the job's rule is one of these (ROBUST) and refuses
central DP around them; this module builds the rule from its parameters.
"""

from __future__ import annotations

from enclavefl.aggregation import AggregationStrategy
from enclavefl.aggregation.bucketing import Bucketing
from enclavefl.aggregation.centered_clipping import CenteredClipping
from enclavefl.aggregation.robust import CoordinateMedian, Krum, TrimmedMean
from enclavefl.enclave.strategy_params import integer, no_leftovers, number
from enclavefl.errors import JobSpecError


def build_robust(name: str, params: dict[str, object], *, bucketing_key: bytes | None) -> AggregationStrategy:
    """The robust rule `name` from its `strategy.params` (popped; JobSpecError names a wrong or unknown one)."""
    strategy: AggregationStrategy
    if name == "centered_clipping":
        if "tau" not in params:
            raise JobSpecError(
                "strategy.params.tau: centered_clipping needs its clip radius tau (the L2 distance from last "
                "round's step beyond which an update is scaled down); pick it above the honest updates' spread"
            )
        strategy = CenteredClipping(tau=number(params, "tau"))
        no_leftovers(name, params)
        return strategy
    bucket_size = integer(params, "bucket_size") if "bucket_size" in params else None
    if name == "median":
        strategy = CoordinateMedian()
    elif name == "trimmed_mean":
        strategy = TrimmedMean(beta=number(params, "beta") if "beta" in params else 0.2)
    else:
        byzantine = integer(params, "byzantine") if "byzantine" in params else 1
        default_select = 1 if name == "krum" else 2
        select = integer(params, "select") if "select" in params else default_select
        if name == "krum" and select != 1:
            raise JobSpecError("strategy.params.select: krum selects 1 update; use multikrum for more")
        if name == "multikrum" and select < 2:
            raise JobSpecError("strategy.params.select: multikrum selects at least 2 updates")
        strategy = Krum(byzantine=byzantine, select=select)
    no_leftovers(name, params)
    if bucket_size is None:
        return strategy
    return Bucketing(inner=strategy, bucket_size=bucket_size, key=bucketing_key)

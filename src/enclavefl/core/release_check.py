"""K must bound what is released, not only what is received: refuse rules that release fewer-than-K values.

    check_rule_respects_k("median", {}, k=3, max_updates=5)          # ReleaseBelowK: one owner per coordinate
    check_rule_respects_k("multikrum", {"select": 3}, k=3, max_updates=5)   # fine: a mean of 3 updates

K (`min_contributions`) counts the updates a round receives. Krum then releases one of them verbatim, the
coordinate-wise median makes every coordinate one owner's exact value, Multi-Krum averages only `select`, the
trimmed mean averages n - 2 floor(beta n), and a bucketed rule can release one bucket's mean. Each released
value must be a function of at least K updates for every round size n the job can close with: from K (the
smallest round) to the number of enrolled owners. This module checks the job spec's words (run by JobSpec, so
at `job init`, when any party loads a job file, and when the enclave loads it; loaded only for a rule other than
fedavg: core/optional_checks.py); the enclave checks the rule objects it built once more
(enclave/release_support.py), so a spec that skipped this check is still refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from enclavefl.core.job import OPEN_JOB_HORIZON
from enclavefl.errors import JobSpecError, ReleaseBelowK

_COORDINATE_RULES = ("median", "trimmed_mean", "krum", "multikrum")
_ADVICE = "use centered_clipping (it averages every update), or a rule/bucket size whose released values mix >= K"


def check_rule_respects_k(name: str, params: Mapping[str, object], *, k: int, max_updates: int | None) -> None:
    """Raise ReleaseBelowK when rule `name` with `params` can release a value computed from fewer than k updates.

    `max_updates` is the number of enrolled owners (None: open enrolment, checked up to OPEN_JOB_HORIZON).
    Rules that average every update (fedavg, the server optimizers, centered_clipping) always pass.
    """
    if name not in _COORDINATE_RULES or k <= 1:
        return  # K = 1 promises nothing to check; unknown names are refused by the enclave's registry
    bucket = _int_param(params, "bucket_size", None)
    largest = max_updates if max_updates is not None else OPEN_JOB_HORIZON
    for n in range(k, max(k, largest) + 1):
        kept, per_input = _kept_inputs(name, params, n, bucket)
        if kept * per_input < k:
            raise ReleaseBelowK(_explain(name, params, n, bucket, kept, k))


def _kept_inputs(name: str, params: Mapping[str, object], n: int, bucket: int | None) -> tuple[int, int]:
    """(inputs a released coordinate depends on, fewest updates per input) for a round of n updates."""
    inputs = n if bucket is None else max(1, n // bucket)  # bucketing.py: floor(n / s) buckets, none below s
    per_input = 1 if bucket is None else n // inputs  # the smallest bucket of that partition
    if name in ("median", "krum"):
        kept = 1  # the middle value / the selected update (a median of an even count mixes two: count 1, safe side)
    elif name == "trimmed_mean":
        kept = inputs - 2 * math.floor(_float_param(params, "beta", 0.2) * inputs)
    else:
        kept = _int_param(params, "select", 2) or 2
    return max(kept, 0), per_input


def _explain(name: str, params: Mapping[str, object], n: int, bucket: int | None, kept: int, k: int) -> str:
    inputs = "updates" if bucket is None else f"bucket means (of >= {bucket} updates each)"
    if name == "median":
        why = f"every coordinate of its output is one of the {inputs}, exactly (the middle value)"
    elif name == "krum":
        why = f"it releases the one of the {inputs} it selects, verbatim (allowed only with K = 1)"
    elif name == "multikrum":
        why = f"it releases the mean of select = {kept} {inputs}"
    else:
        beta = _float_param(params, "beta", 0.2)
        count = n if bucket is None else max(1, n // bucket)
        why = (
            f"with n = {n} updates it trims floor(beta x {count}) = {math.floor(beta * count)} of the {inputs} "
            f"per side (beta {beta:g}) and averages the other {kept}; n - 2 floor(beta n) >= K must hold for every "
            "round size from K to the number of enrolled owners (at n = K: beta < 1/K)"
        )
    per = 1 if bucket is None else n // max(1, n // bucket)
    where = f"strategy {name}" + (f" with bucket_size {bucket}" if bucket is not None else "")
    return f"{where} can release values computed from {kept * per} update(s), fewer than K = {k}: {why}; {_ADVICE}"


def _int_param(params: Mapping[str, object], key: str, default: int | None) -> int | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobSpecError(f"strategy.params.{key}: must be an integer >= 1, got {value!r}")
    return value


def _float_param(params: Mapping[str, object], key: str, default: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 0.5:
        raise JobSpecError(f"strategy.params.{key}: must be a number in [0, 0.5), got {value!r}")
    return float(value)

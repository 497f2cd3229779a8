"""Reading a job's `strategy.params`: each value popped with its type checked, then nothing may be left over.

    tau = number(params, "tau"); no_leftovers("centered_clipping", params)   # JobSpecError names the field

Shared by enclave/strategies.py and the optional parts it loads (enclave/robust_strategies.py).
"""

from __future__ import annotations

from enclavefl.errors import JobSpecError


def number(params: dict[str, object], key: str) -> float:
    value = params.pop(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(f"strategy.params.{key}: must be a number, got {value!r}")
    return float(value)


def integer(params: dict[str, object], key: str) -> int:
    value = params.pop(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobSpecError(f"strategy.params.{key}: must be an integer, got {value!r}")
    return value


def no_leftovers(name: str, params: dict[str, object]) -> None:
    if params:
        raise JobSpecError(f"strategy.params: {name} does not take {', '.join(sorted(params))}")

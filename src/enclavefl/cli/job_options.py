"""`enclavefl job init`'s options that take a small syntax of their own, parsed into the job's values.

strategy_params(["tau=0.5", "weighted=false"])   # {"tau": 0.5, "weighted": False}
base_model_option("tiny-llama=3fa2...")           # BaseModelSpec(name="tiny-llama", sha256="3fa2...")
"""

from __future__ import annotations

import tomllib

from enclavefl.core.job import BaseModelSpec
from enclavefl.errors import ConfigError


def strategy_params(pairs: list[str]) -> dict[str, object]:
    """--param KEY=VALUE ...: values are TOML (numbers, booleans)."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        try:
            value = tomllib.loads(f"value = {text}")["value"] if sep and key else None
        except tomllib.TOMLDecodeError:
            value = None
        if value is None:
            raise ConfigError(f"--param {pair!r}: expected KEY=VALUE with a TOML value, e.g. tau=0.5")
        params[key] = value
    return params


def base_model_option(pair: str | None) -> BaseModelSpec | None:
    """--base-model NAME=SHA256 -> the job's [base_model] (JobSpecError names a malformed digest)."""
    if pair is None:
        return None
    name, sep, digest = pair.rpartition("=")
    if not sep or not name:
        raise ConfigError(f"--base-model {pair!r}: expected NAME=SHA256 (enclavefl job initial-model prints it)")
    return BaseModelSpec(name=name, sha256=digest.lower())

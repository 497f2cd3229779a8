"""The job spec in its canonical form, the exact text its digest is computed over: what the enclave loads.

    job = load_canonical_job("job.json")      # strict: JobSpec's checks run; digest() == SHA-256 of the file's text
    Path("job.json").write_text(job.canonical_text() + "\\n")   # the other way (outside: `enclavefl enclave assemble`)

People write TOML (core/jobfile.py: relative certificate paths, an initial-model file, friendly field errors); the
enclave reads this form instead, which the host converts from the operator's job.toml (the release's job/job.json,
written by `enclavefl enclave assemble` from job/job.toml and measured with it). The enclave trusts nothing of the
conversion: it parses strictly (no duplicate key, no NaN, every field of its type), builds the JobSpec (whose own
validation runs here, inside), and refuses a text that is not exactly the canonical form of what it parsed. So the
digest it attests, recomputed from the parsed spec, is the digest of these bytes, and a converter that changed or
dropped anything yields a digest the data owners (who compute theirs from their own job.toml) refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enclavefl.core.job import (
    DEFAULT_MAX_EXAMPLES_PER_UPDATE,
    BaseModelSpec,
    DataOwnerSpec,
    JobSpec,
    StrategySpec,
    TrainConfig,
)
from enclavefl.core.optional_checks import load_check
from enclavefl.core.weights import SAFETENSORS_TO_DTYPE, ModelSchema, TensorSpec
from enclavefl.errors import JobSpecError

_NUMBER = (int, float)
_HEX = frozenset("0123456789abcdef")
_KIND_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "dict": "an object", "list": "an array"}
_KIND_NAMES["NoneType"] = "null"  # a canonical field that may be unset is written as null


def load_canonical_job(path: str | Path) -> JobSpec:
    """Read a job in its canonical form (one trailing newline allowed); raises JobSpecError naming the field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(f"{path}: cannot read the job: {exc}") from None
    return job_from_canonical(text.removesuffix("\n"))


def job_from_canonical(text: str) -> JobSpec:
    """The JobSpec whose canonical text is exactly `text`; anything else (another form, a field more) is refused."""
    try:
        raw = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise JobSpecError(f"job: not canonical JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise JobSpecError("job: must be a JSON object")
    train, strategy = typed(raw, "train", dict), typed(raw, "strategy", dict)
    owners, schema = typed(raw, "data_owners", list), typed(raw, "model_schema", (list, type(None)))
    masking = typed(raw, "secure_aggregation", (dict, type(None)), default=None)
    base_model = typed(raw, "base_model", (dict, type(None)), default=None)
    job = JobSpec(
        name=typed(raw, "name", str),
        rounds=typed(raw, "rounds", int),
        train=TrainConfig(
            **{k: typed(train, k, (int, type(None)), "train.") for k in ("local_steps", "local_epochs", "batch_size")},
            **{k: typed(train, k, _NUMBER, "train.") for k in ("lr", "momentum", "proximal_mu")},
            optimizer=typed(train, "optimizer", str, "train."),
            seed=typed(train, "seed", int, "train."),
        ),
        strategy=StrategySpec(
            name=typed(strategy, "name", str, "strategy."), params=typed(strategy, "params", dict, "strategy.")
        ),
        min_contributions=typed(raw, "min_contributions", int),
        round_deadline_seconds=typed(raw, "round_deadline_seconds", _NUMBER),
        max_update_bytes=typed(raw, "max_update_bytes", (int, type(None))),
        data_owners=tuple(_owner(o, f"data_owners[{i}].") for i, o in enumerate(owners)),
        model_schema=None
        if schema is None
        else ModelSchema(tensors=tuple(_tensor(t, i) for i, t in enumerate(schema))),
        initial_model_sha256=_hex_or_empty(typed(raw, "initial_model_sha256", str), "initial_model_sha256"),
        dp=typed(raw, "dp", (dict, type(None))),
        extra=typed(raw, "extra", dict),
        model_owner_certificate_pem=_pem(raw, "model_owner_certificate_pem", "", "CERTIFICATE"),
        on_round_failure=typed(raw, "on_round_failure", str, default="retry"),
        max_round_attempts=typed(raw, "max_round_attempts", int, default=3),
        max_examples_per_update=typed(raw, "max_examples_per_update", int, default=DEFAULT_MAX_EXAMPLES_PER_UPDATE),
        # masked mode's parameters load with their check, only for a job that has them (core/optional_checks.py)
        secure_aggregation=None
        if masking is None
        else load_check("secure_aggregation").SecureAggregationSpec.from_mapping(masking),
        base_model=None
        if base_model is None
        else BaseModelSpec(
            name=typed(base_model, "name", str, "base_model."), sha256=typed(base_model, "sha256", str, "base_model.")
        ),
        clients_per_round=typed(raw, "clients_per_round", int, default=None),
        fraction_per_round=typed(raw, "fraction_per_round", _NUMBER, default=None),
        evaluate_every=typed(raw, "evaluate_every", int, default=0),
    )
    if job.canonical_text() != text:  # a field the spec does not hold, a default written out, another layout
        raise JobSpecError("job: not the canonical form of the job it describes (write it with job.canonical_text())")
    return job


def _owner(raw: object, where: str) -> DataOwnerSpec:
    if not isinstance(raw, dict):
        raise JobSpecError(f"{where.rstrip('.')}: must be an object")
    certificate = _pem(raw, "certificate_pem", where, "CERTIFICATE")
    public_key = _pem(raw, "public_key_pem", where, "PUBLIC KEY")
    if not certificate and not public_key:
        raise JobSpecError(f"{where}certificate_pem: every data owner needs a certificate (or public_key_pem)")
    return DataOwnerSpec(name=typed(raw, "name", str, where), certificate_pem=certificate, public_key_pem=public_key)


def _tensor(raw: object, index: int) -> TensorSpec:
    if not isinstance(raw, dict):
        raise JobSpecError(f"model_schema[{index}]: must be an object")
    return tensor_spec(raw, f"model_schema[{index}].")


def tensor_spec(raw: Mapping[str, Any], where: str) -> TensorSpec:
    """One tensor of the model schema, checked (core/jobfile.py's TOML tables use it too)."""
    shape = typed(raw, "shape", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise JobSpecError(f"{where}shape: must be a list of non-negative integers, got {shape!r}")
    dtype = typed(raw, "dtype", str, where)
    if dtype not in SAFETENSORS_TO_DTYPE.values():
        raise JobSpecError(f"{where}dtype: unsupported dtype {dtype!r}")
    return TensorSpec(name=typed(raw, "name", str, where), shape=tuple(shape), dtype=dtype)


def _pem(raw: Mapping[str, Any], key: str, where: str, kind: str) -> str:
    value: str = typed(raw, key, str, where, default="")
    if value and f"-----BEGIN {kind}-----" not in value:
        raise JobSpecError(f"{where}{key}: not a PEM {kind.lower()}")
    return value


def _hex_or_empty(value: str, where: str) -> str:
    if value and (len(value) != 64 or not set(value) <= _HEX):
        raise JobSpecError(f"{where}: must be 64 lowercase hex digits")
    return value


def typed(
    raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "", *, default: Any = ...
) -> Any:
    """`raw[key]` if it is a `kind` (never a bool: no field is one), else JobSpecError naming the field; `default`
    when absent, if given (core/jobfile.py's TOML fields are checked by the same rule)."""
    if key not in raw:
        if default is ...:
            raise JobSpecError(f"{where}{key}: missing")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(_KIND_NAMES.get(k.__name__, k.__name__) for k in kinds)
        raise JobSpecError(f"{where}{key}: expected {expected}, got {value!r}")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # json.loads would keep the last one silently
        raise JobSpecError(f"job: a key appears twice in one object ({', '.join(k for k, _ in pairs)})")
    return found


def _no_constant(name: str) -> Any:
    raise JobSpecError(f"job: {name} is not a number the canonical form holds")

"""The job spec as a TOML file, loaded: validated, and every error names the field.

    name = "mnist-demo"
    rounds = 3
    min_contributions = 2
    round_deadline_seconds = 120.0
    on_round_failure = "retry"            # or "stop"
    max_examples_per_update = 100000      # optional: an update's declared example count (its weight) at most
    clients_per_round = 20                # optional: owners drawn per round by the enclave (or fraction_per_round)
    initial_model = "model.safetensors"   # schema and hash are read from the file ...
    # initial_model_sha256 = "…"          # ... or given inline with [[model_schema]] tables
    [train]
    local_steps = 5
    lr = 0.1
    [strategy]
    name = "fedavg"
    params = { weighted = true }
    [model_owner]
    certificate = "model_owner.pem"       # a path relative to this file, or the PEM text inline
    [[data_owners]]
    name = "alice"
    certificate = "alice.pem"
    [base_model]                          # optional: the model schema is a trainable part (LoRA adapters) and
    name = "tiny-llama"                   # every owner trains it on its local copy of this frozen base model,
    sha256 = "…"                          # refused unless that copy's weights digest is this one

`dump_job` (core/jobfile_write.py) writes the inline form (certificates and schema embedded), so a dumped file
loads to a spec with the same digest anywhere.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enclavefl.core.codec import decode_weights
from enclavefl.core.job import (
    DEFAULT_MAX_EXAMPLES_PER_UPDATE,
    BaseModelSpec,
    DataOwnerSpec,
    JobSpec,
    StrategySpec,
    TrainConfig,
)
from enclavefl.core.job_canonical import tensor_spec, typed
from enclavefl.core.optional_checks import load_check
from enclavefl.core.weights import ModelSchema, ModelWeights, TensorSpec
from enclavefl.errors import CodecError, JobSpecError

_TOP_KEYS = {
    "name",
    "rounds",
    "min_contributions",
    "round_deadline_seconds",
    "max_update_bytes",
    "on_round_failure",
    "max_round_attempts",
    "max_examples_per_update",
    "initial_model",
    "initial_model_sha256",
    "model_schema",
    "train",
    "strategy",
    "dp",
    "extra",
    "model_owner",
    "data_owners",
    "secure_aggregation",
    "base_model",
    "clients_per_round",
    "fraction_per_round",
    "evaluate_every",
}
_TRAIN_KEYS = {"local_steps", "local_epochs", "batch_size", "lr", "optimizer", "momentum", "proximal_mu", "seed"}


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job file; relative certificate and model paths are resolved against its folder."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text())
    except OSError as exc:
        raise JobSpecError(f"{file}: cannot read the job file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobSpecError(f"{file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # found by tests/fuzz: a job file that is not UTF-8 text
        raise JobSpecError(f"{file}: not UTF-8 text: {exc}") from None
    return job_from_mapping(raw, base_dir=file.parent)


def job_from_mapping(raw: Mapping[str, Any], *, base_dir: Path) -> JobSpec:
    _only_keys(raw, _TOP_KEYS, "")
    schema, model_hash = _model(raw, base_dir)
    train_raw = _table(raw, "train")
    _only_keys(train_raw, _TRAIN_KEYS, "train.")
    strategy_raw = _table(raw, "strategy", default={})
    _only_keys(strategy_raw, {"name", "params"}, "strategy.")
    owners_raw = raw.get("data_owners", [])
    if not isinstance(owners_raw, list):
        raise JobSpecError("data_owners: must be an array of tables ([[data_owners]])")
    masking_raw = _table(raw, "secure_aggregation", default=None)
    masking = None
    if masking_raw is not None:  # masked mode's parameters load with their check (core/optional_checks.py)
        masking = load_check("secure_aggregation").SecureAggregationSpec.from_mapping(masking_raw)
    try:
        return JobSpec(
            name=typed(raw, "name", str),
            rounds=typed(raw, "rounds", int),
            train=TrainConfig(**{k: _train_value(train_raw, k) for k in train_raw}),
            strategy=StrategySpec(
                name=typed(strategy_raw, "name", str, "strategy.", default="fedavg"),
                params=_table(strategy_raw, "params", "strategy.", default={"weighted": True}),
            ),
            min_contributions=typed(raw, "min_contributions", int, default=1),
            round_deadline_seconds=float(typed(raw, "round_deadline_seconds", (int, float), default=300.0)),
            max_update_bytes=typed(raw, "max_update_bytes", int, default=None),
            data_owners=tuple(_owner(o, i, base_dir) for i, o in enumerate(owners_raw)),
            model_schema=schema,
            initial_model_sha256=model_hash,
            dp=_table(raw, "dp", default=None),
            extra=_table(raw, "extra", default={}),
            model_owner_certificate_pem=_model_owner(raw, base_dir),
            on_round_failure=typed(raw, "on_round_failure", str, default="retry"),
            max_round_attempts=typed(raw, "max_round_attempts", int, default=3),
            max_examples_per_update=typed(raw, "max_examples_per_update", int, default=DEFAULT_MAX_EXAMPLES_PER_UPDATE),
            secure_aggregation=masking,
            base_model=_base_model(raw),
            clients_per_round=typed(raw, "clients_per_round", int, default=None),
            fraction_per_round=_fraction(raw),
            evaluate_every=typed(raw, "evaluate_every", int, default=0),
        )
    except TypeError as exc:  # an unexpected keyword reaching a dataclass
        raise JobSpecError(f"job spec: {exc}") from None


def read_initial_model(path: str | Path) -> ModelWeights:
    """Decode a safetensors model file with the strict codec (no pickle, no torch)."""
    try:
        return decode_weights(Path(path).read_bytes())
    except OSError as exc:
        raise JobSpecError(f"initial_model: cannot read {path}: {exc.strerror}") from None
    except CodecError as exc:
        raise JobSpecError(f"initial_model: {path} is not a valid safetensors model: {exc}") from None


# --- pieces ---------------------------------------------------------------------------------
def _model(raw: Mapping[str, Any], base_dir: Path) -> tuple[ModelSchema | None, str]:
    if "initial_model" in raw:
        if "initial_model_sha256" in raw or "model_schema" in raw:
            raise JobSpecError("initial_model: give either a model file or initial_model_sha256 + model_schema")
        weights = read_initial_model(base_dir / typed(raw, "initial_model", str))
        return weights.schema, weights.sha256().hex()
    model_hash = typed(raw, "initial_model_sha256", str, default="")
    if model_hash and (len(model_hash) != 64 or any(c not in "0123456789abcdef" for c in model_hash)):
        raise JobSpecError("initial_model_sha256: must be 64 lowercase hex digits")
    tensors = raw.get("model_schema")
    if tensors is None:
        return None, model_hash
    if not isinstance(tensors, list):
        raise JobSpecError("model_schema: must be an array of tables ([[model_schema]])")
    return ModelSchema(tensors=tuple(_tensor(t, i) for i, t in enumerate(tensors))), model_hash


def _tensor(raw: object, index: int) -> TensorSpec:
    where = f"model_schema[{index}]."
    if not isinstance(raw, dict):
        raise JobSpecError(f"model_schema[{index}]: must be a table")
    _only_keys(raw, {"name", "shape", "dtype"}, where)
    return tensor_spec(raw, where)


def _owner(raw: object, index: int, base_dir: Path) -> DataOwnerSpec:
    where = f"data_owners[{index}]."
    if not isinstance(raw, dict):
        raise JobSpecError(f"data_owners[{index}]: must be a table")
    _only_keys(raw, {"name", "certificate", "public_key"}, where)
    certificate = _pem(raw, "certificate", where, base_dir, "CERTIFICATE")
    public_key = _pem(raw, "public_key", where, base_dir, "PUBLIC KEY")
    if not certificate and not public_key:
        raise JobSpecError(f"{where}certificate: every data owner needs a certificate (or public_key)")
    return DataOwnerSpec(name=typed(raw, "name", str, where), certificate_pem=certificate, public_key_pem=public_key)


def _base_model(raw: Mapping[str, Any]) -> BaseModelSpec | None:
    table = _table(raw, "base_model", default=None)
    if table is None:
        return None
    _only_keys(table, {"name", "sha256"}, "base_model.")
    where = "base_model."
    return BaseModelSpec(name=typed(table, "name", str, where), sha256=typed(table, "sha256", str, where))


def _fraction(raw: Mapping[str, Any]) -> float | None:
    value = typed(raw, "fraction_per_round", (int, float), default=None)
    return float(value) if value is not None else None


def _model_owner(raw: Mapping[str, Any], base_dir: Path) -> str:
    table = _table(raw, "model_owner", default={})
    _only_keys(table, {"certificate"}, "model_owner.")
    return _pem(table, "certificate", "model_owner.", base_dir, "CERTIFICATE")


def _pem(raw: Mapping[str, Any], key: str, where: str, base_dir: Path, kind: str) -> str:
    value: str = typed(raw, key, str, where, default="")
    if not value:
        return ""
    if "-----BEGIN" not in value:
        try:
            value = (base_dir / value).read_text()
        except OSError as exc:
            raise JobSpecError(f"{where}{key}: cannot read {base_dir / value}: {exc.strerror}") from None
    if f"-----BEGIN {kind}-----" not in value:
        raise JobSpecError(f"{where}{key}: not a PEM {kind.lower()}")
    return value.strip() + "\n"


def _only_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise JobSpecError(f"{where}{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _table(raw: Mapping[str, Any], key: str, where: str = "", *, default: Any = ...) -> Any:
    if key not in raw:
        if default is ...:
            raise JobSpecError(f"{where}{key}: missing table")
        return default
    value = raw[key]
    if not isinstance(value, dict):
        raise JobSpecError(f"{where}{key}: must be a table")
    return value


def _train_value(raw: Mapping[str, Any], key: str) -> Any:
    if key == "optimizer":
        return typed(raw, key, str, "train.")
    if key in ("lr", "momentum", "proximal_mu"):
        return float(typed(raw, key, (int, float), "train."))
    return typed(raw, key, int, "train.")

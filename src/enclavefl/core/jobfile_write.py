"""The job spec written as a self-contained TOML file (the inverse of core/jobfile.py's `load_job`).

    text = dump_job(job)                  # inline PEMs and schema: loads back to a spec with the same digest
    Path("job.toml").write_text(text)

The model owner writes job files (`enclavefl job init`, `make_job`); the node only reads them, so this half lives
apart from the loader and stays out of the enclave's import closure (tests/enclave/test_tcb.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from enclavefl.core.job import DEFAULT_MAX_EXAMPLES_PER_UPDATE, JobSpec
from enclavefl.errors import JobSpecError


def dump_job(job: JobSpec) -> str:
    """The self-contained TOML text of `job` (inline PEMs and schema); loads back to the same digest."""
    lines = [
        f"name = {_s(job.name)}",
        f"rounds = {job.rounds}",
        f"min_contributions = {job.min_contributions}",
        f"round_deadline_seconds = {job.round_deadline_seconds!r}",
        f"on_round_failure = {_s(job.on_round_failure)}",
        f"max_round_attempts = {job.max_round_attempts}",
    ]
    if job.max_examples_per_update != DEFAULT_MAX_EXAMPLES_PER_UPDATE:
        lines.append(f"max_examples_per_update = {job.max_examples_per_update}")
    if job.max_update_bytes is not None:
        lines.append(f"max_update_bytes = {job.max_update_bytes}")
    if job.clients_per_round is not None:
        lines.append(f"clients_per_round = {job.clients_per_round}")
    if job.fraction_per_round is not None:
        lines.append(f"fraction_per_round = {float(job.fraction_per_round)!r}")
    if job.evaluate_every:
        lines.append(f"evaluate_every = {job.evaluate_every}")
    lines.append(f"initial_model_sha256 = {_s(job.initial_model_sha256)}")
    lines.append(f"extra = {_inline(job.extra)}")
    if job.dp is not None:
        lines.append(f"dp = {_inline(job.dp)}")
    lines += ["", "[train]"]
    lines += [f"{k} = {_value(v)}" for k, v in job.train.to_canonical().items() if v is not None]
    lines += ["", "[strategy]", f"name = {_s(job.strategy.name)}", f"params = {_inline(job.strategy.params)}"]
    if job.secure_aggregation is not None:
        lines += ["", "[secure_aggregation]"]
        lines += [f"{k} = {_value(v)}" for k, v in job.secure_aggregation.to_canonical().items()]
    if job.base_model is not None:
        lines += ["", "[base_model]", f"name = {_s(job.base_model.name)}", f"sha256 = {_s(job.base_model.sha256)}"]
    if job.model_owner_certificate_pem:
        lines += ["", "[model_owner]", f"certificate = {_s(job.model_owner_certificate_pem)}"]
    for owner in job.data_owners:
        lines += ["", "[[data_owners]]", f"name = {_s(owner.name)}"]
        if owner.certificate_pem:
            lines.append(f"certificate = {_s(owner.certificate_pem)}")
        if owner.public_key_pem:
            lines.append(f"public_key = {_s(owner.public_key_pem)}")
    for spec in job.model_schema.tensors if job.model_schema is not None else ():
        lines += [
            "",
            "[[model_schema]]",
            f"name = {_s(spec.name)}",
            f"shape = {list(spec.shape)}",
            f"dtype = {_s(spec.dtype)}",
        ]
    return "\n".join(lines) + "\n"


def _s(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _value(value: object) -> str:
    if isinstance(value, str):
        return _s(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return _inline(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise JobSpecError(f"cannot write {value!r} to TOML")


def _inline(table: Mapping[str, object]) -> str:
    return "{" + ", ".join(f"{_s(k)} = {_value(v)}" for k, v in table.items()) + "}"

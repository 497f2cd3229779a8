"""The enclave's optional parts, each loaded only by a job that uses it, through this one module.

    masked = load_part("masked")          # enclavefl.enclave.masked: only for a job with [secure_aggregation]
    cohorts = load_part("cohorts")        # enclavefl.enclave.cohort: only for a job with clients_per_round

A plain job's enclave never imports them, so what it runs is the smaller closure `enclavefl enclave tcb` prints
first. Every part is still inside what the release trusts: tee/gramine_pkg/tcb.py reads PARTS (by its source,
without importing this module) and adds each part's closure to the files Gramine trusts and to the simulated
MRENCLAVE. Nothing else in the enclave may load a module by name (tests/enclave/test_tcb.py checks it).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Final

# part -> its root module; tee/gramine_pkg/tcb.py parses this literal: keep it a plain dict of strings
PARTS: Final = {
    "masked": "enclavefl.enclave.masked",
    "cohorts": "enclavefl.enclave.cohort",
}


def load_part(name: str) -> ModuleType:
    """The root module of optional part `name` (imported on first use)."""
    return importlib.import_module(PARTS[name])


def load_masked_mode() -> ModuleType:
    """enclavefl.enclave.masked, for a job with [secure_aggregation]."""
    return load_part("masked")


def load_cohorts() -> Any:
    """enclavefl.enclave.cohort's RoundCohorts, for a job that draws a cohort per round (clients_per_round)."""
    return load_part("cohorts").RoundCohorts

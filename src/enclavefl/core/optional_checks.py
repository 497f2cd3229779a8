"""The job spec's checks of its optional tables, each module loaded only by a job that has that table.

    load_check("secure_aggregation").check_secure_aggregation(spec, owners=5, ...)   # a job with [secure_aggregation]
    load_check("cohort").check_cohort_fields(clients_per_round=20, ...)              # a job with clients_per_round
    load_check("release").check_rule_respects_k("median", {}, k=3, max_updates=5)    # a rule other than fedavg

JobSpec refuses an unsafe job when it is made, as it always did and with the same message; only the modules holding
these checks (and the masked-mode parameters' value) are imported on first use, when the job has that table, so a
plain job's enclave (FedAvg, no masking, no cohort) never loads them. Every check is still inside what the release
trusts: tee/gramine_pkg/tcb.py reads CHECKS (by its source, without importing this module) and counts each module
with the enclave's optional parts (enclave/parts.py): in the release's closure, not in a plain job's. The names
are this table's keys, written in the code: never a name from the job or the network.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final, Literal

Check = Literal["secure_aggregation", "cohort", "release"]

# check -> its module; tee/gramine_pkg/tcb.py parses this literal: keep it a plain dict of strings
CHECKS: Final = {
    "secure_aggregation": "enclavefl.core.secure_aggregation",  # [secure_aggregation]: masked mode's parameters
    "cohort": "enclavefl.core.cohort",  # clients_per_round / fraction_per_round: the cohort's size
    "release": "enclavefl.core.release_check",  # a rule other than fedavg: K bounds what it releases
}


def load_check(name: Check) -> ModuleType:
    """The module of check `name` (imported on first use)."""
    return importlib.import_module(CHECKS[name])

"""The enclave's optional parts, each loaded only by a job that uses it, through this one module.

    masked = load_part("masked")          # enclavefl.enclave.masked: only for a job with [secure_aggregation]
    cohorts = load_part("cohorts")        # enclavefl.enclave.cohort: only for a job with clients_per_round
    dp = load_part("dp")                  # enclavefl.privacy: only for a job with [dp]

A plain job (FedAvg, no DP, no masking, no robust rule, no server optimizer, no federated evaluation) never
imports them, so what it runs is the smaller closure `enclavefl enclave tcb` prints first. Every part is still
inside what the release trusts: tee/gramine_pkg/tcb.py reads PARTS (by its source, without importing this module)
and adds each part's closure to the files Gramine trusts and to the simulated MRENCLAVE. The part names are this
table's keys, written in the enclave's code: never a name from the job or the network. Nothing else in the
enclave may load a module by name (tests/enclave/test_tcb.py checks it).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from enclavefl.core.job import JobSpec
    from enclavefl.enclave.evaluation import FederatedEvaluation

Part = Literal["masked", "cohorts", "dp", "robust", "server_optimizer", "evaluation"]

# part -> its root module; tee/gramine_pkg/tcb.py parses this literal: keep it a plain dict of strings
PARTS: Final = {
    "masked": "enclavefl.enclave.masked",  # [secure_aggregation]: masked mode and its unmasking math
    "cohorts": "enclavefl.enclave.cohort",  # clients_per_round: the enclave's draw of each round's cohort
    "dp": "enclavefl.privacy",  # [dp]: clipping, CSPRNG noise, the accountant
    "robust": "enclavefl.enclave.robust_strategies",  # median, trimmed_mean, (multi)krum, bucketing, centered_clipping
    "server_optimizer": "enclavefl.aggregation.server_opt",  # fedavgm, fedadam, fedyogi, fedadagrad
    "evaluation": "enclavefl.enclave.evaluation",  # federated evaluation of released models (in process)
}


def load_part(name: Part) -> ModuleType:
    """The root module of optional part `name` (imported on first use)."""
    return importlib.import_module(PARTS[name])


def load_masked_mode() -> ModuleType:
    """enclavefl.enclave.masked, for a job with [secure_aggregation]."""
    return load_part("masked")


def load_cohorts() -> Any:
    """enclavefl.enclave.cohort's RoundCohorts, for a job that draws a cohort per round (clients_per_round)."""
    return load_part("cohorts").RoundCohorts


def load_evaluation(*, job: JobSpec, lock: threading.Lock, released_round: Callable[[], int]) -> FederatedEvaluation:
    """A new federated-evaluation tally (enclave/evaluation.py), for a worker that is asked for one."""
    evaluation: FederatedEvaluation = load_part("evaluation").FederatedEvaluation(
        job=job, lock=lock, released_round=released_round
    )
    return evaluation

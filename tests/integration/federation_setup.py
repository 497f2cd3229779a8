"""Small federations for the multi-process tests: a tiny task on random two-feature data, any number of owners."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from enclavefl.demos.process_federation import FederationFiles, write_federation_files
from enclavefl.demos.seed import initial_model, seed_job

# nn.Linear(2, 1), sum of squared errors, gradient descent by hand (loaded by file path, like a user's task)
TASK = f"{Path(__file__).with_name('tiny_task.py')}:TASK"
# the same, stalling in every round after its first: an owner to kill in round 2 before it can upload it
STALLING_TASK = f"{Path(__file__).with_name('tiny_task.py')}:STALLING_TASK"


def owner_names(count: int) -> list[str]:
    return [f"owner-{i:02d}" for i in range(count)]


def tiny_federation(
    directory: Path, *, owners: int, rounds: int, min_contributions: int, deadline: float, platform_dir: Path
) -> FederationFiles:
    """`owners` data owners with 4 rows each (a fixed, non-secret test RNG), the seed model and task."""
    rng = np.random.default_rng(7)
    datasets = {
        name: {"x": rng.random((4, 2), dtype=np.float32), "y": rng.random((4, 1), dtype=np.float32)}
        for name in owner_names(owners)
    }
    initial = initial_model(0)
    job = dataclasses.replace(
        seed_job(initial, rounds=rounds),
        name="tiny",
        data_owners=(),
        min_contributions=min_contributions,
        round_deadline_seconds=deadline,
    )
    return write_federation_files(directory, job=job, initial=initial, datasets=datasets, platform_dir=platform_dir)

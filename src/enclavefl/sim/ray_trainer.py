"""Virtual owners' local training as Ray tasks: a local Ray by default, a cluster by address (`enclavefl[ray]`).

    trainer = RayTrainer(spec, address=None, num_cpus_per_owner=1, num_gpus_per_owner=0)
    for update in trainer.stream(round_index, [3, 17, 42], global_model_bytes):   # in that order, as they finish
        ...                                                                      # upload it, then drop it
    trainer.close()                                                              # shuts down the Ray it started

Each owner's round is one Ray task (sim/virtual_training.py: its data built in the worker from its index). The
round's global model is put in Ray's object store once; the task returns safetensors bytes. At most `max_in_flight`
tasks are submitted ahead of the update being uploaded, so what waits in the object store is bounded by that window
(not by the number of owners), and the driver fetches one update at a time, in cohort order, so a run is
reproducible whatever the number of workers. Ray moves the task and data function to its workers with its own
serializer (the user's own code, inside the user's cluster); weights come back as safetensors, never pickled.
"""

from __future__ import annotations

import collections
import importlib
from collections.abc import Iterator, Sequence
from typing import Any

from enclavefl.errors import TaskError
from enclavefl.sim.virtual_training import TrainedUpdate, TrainingSpec, train_virtual_owner

RAY_EXTRA = "pip install 'enclavefl[ray]'"


def require_ray(what: str) -> Any:
    """The `ray` module, or ModuleNotFoundError naming `what` and the extra."""
    try:
        return importlib.import_module("ray")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "ray":
            raise
        raise ModuleNotFoundError(f"{what} needs Ray: {RAY_EXTRA}", name="ray") from None


class RayTrainer:
    """Runs virtual owners' rounds as Ray tasks, `num_cpus_per_owner` CPUs and `num_gpus_per_owner` GPUs each."""

    def __init__(
        self,
        spec: TrainingSpec,
        *,
        address: str | None = None,
        num_cpus_per_owner: float = 1.0,
        num_gpus_per_owner: float = 0.0,
        max_in_flight: int | None = None,
        num_cpus: int | None = None,
    ) -> None:
        """`address`: a running cluster ("auto", "ray://host:10001", ...); None starts a local Ray (with `num_cpus`
        CPUs, default all) unless this process already joined one. `max_in_flight`: tasks submitted ahead of the
        upload (default: twice the owners the cluster's CPUs run at once)."""
        if num_cpus_per_owner <= 0 or num_gpus_per_owner < 0:
            raise TaskError("num_cpus_per_owner must be positive and num_gpus_per_owner at least 0")
        ray = require_ray("simulate(backend='ray')")
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING")
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.max_in_flight = max_in_flight or max(2, 2 * int(cpus // num_cpus_per_owner))
        self._spec_ref = ray.put(spec)
        self._names = spec.partition.owner_names()
        self._remote = ray.remote(num_cpus=num_cpus_per_owner, num_gpus=num_gpus_per_owner, max_retries=0)(
            train_virtual_owner
        )

    def stream(self, round_index: int, owners: Sequence[int], global_model: bytes) -> Iterator[TrainedUpdate]:
        """Train `owners` on `global_model`; yield their updates in `owners`' order (TaskError if one raised)."""
        ray = self._ray
        model_ref = ray.put(global_model)  # once per round, shared by the round's tasks
        waiting = iter(owners)
        window: collections.deque[tuple[int, Any]] = collections.deque()

        def submit() -> None:
            index = next(waiting, None)
            if index is not None:
                window.append((index, self._remote.remote(self._spec_ref, index, round_index, model_ref)))

        for _ in range(self.max_in_flight):
            submit()
        try:
            while window:
                index, ref = window.popleft()
                try:
                    update: TrainedUpdate = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    raise TaskError(
                        f"{self._names[index]}: round {round_index}: training raised {type(cause).__name__}: "
                        f"{str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
                    ) from None
                submit()  # keep the workers busy while this update is uploaded
                yield update
        finally:
            for _, ref in window:  # an error or a stop: nothing more is needed from this round
                ray.cancel(ref)

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


class LocalTrainer:
    """The same rounds in this process, one owner after another (tests, and a run without Ray)."""

    def __init__(self, spec: TrainingSpec) -> None:
        self._spec = spec

    def stream(self, round_index: int, owners: Sequence[int], global_model: bytes) -> Iterator[TrainedUpdate]:
        for index in owners:
            yield train_virtual_owner(self._spec, index, round_index, global_model)

    def close(self) -> None:
        return None

"""The virtual owners' loop (sim/virtual_owners.py) drives the real node to the same federation as one thread per
owner: same final model, same receipts, byte for byte (training here in this process: tests/sim/test_ray_backend.py
runs it on Ray)."""

from __future__ import annotations

import pytest
from equal_runs import TASK, fixed_salts, in_process_in_order, initial_model, partition, small_job

from enclavefl.core.job import TrainConfig
from enclavefl.errors import ReceiptError
from enclavefl.sim.ray_trainer import LocalTrainer
from enclavefl.sim.virtual_federation import run_virtual_federation
from enclavefl.sim.virtual_owners import RoundProgress
from enclavefl.sim.virtual_training import OwnerPartition, TrainingSpec
from enclavefl.tee.backend import TeeBackend
from enclavefl.tee.verify.policy import AttestationPolicy


def test_virtual_owners_equal_one_thread_per_owner(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> None:
    tee, policy = sim_enclave
    part = partition(5)
    names = part.owner_names()
    job = small_job(names)
    progress: list[RoundProgress] = []

    virtual, report = run_virtual_federation(
        job=job,
        names=names,
        trainer=LocalTrainer(TrainingSpec(task=TASK, partition=part, train=job.train)),
        initial_model=initial_model(),
        tee=tee,
        policy=policy,
        salts=fixed_salts(names),
        on_progress=progress.append,
    )
    threads = in_process_in_order(job, part, tee, policy)

    assert virtual.final is not None and threads.final is not None
    assert virtual.final.weights.sha256() == threads.final.weights.sha256()
    assert virtual.final.weights.sha256() != initial_model().sha256()  # it trained
    assert [r.canonical_bytes() for r in virtual.final.receipts] == [
        r.canonical_bytes() for r in threads.final.receipts
    ]
    assert [s.metrics for s in virtual.summaries] == [s.metrics for s in threads.summaries]
    assert [(p.round, p.trained, p.accepted) for p in progress] == [(1, 5, 5), (2, 5, 5), (3, 5, 5)]
    assert report.uploads == 15 and report.rounds_signed == 3 and report.refused == {}


def test_only_the_cohort_the_enclave_draws_trains(sim_enclave: tuple[TeeBackend, AttestationPolicy]) -> None:
    """Owners outside a round's cohort are not run; every member's upload is accepted (none is NotInCohort), and
    the receipts commit to cohorts of the job's size (checked for every owner by the driver before signing)."""
    tee, policy = sim_enclave
    part = partition(6)
    names = part.owner_names()
    job = small_job(names, rounds=3, clients_per_round=2)
    trained: list[tuple[int, tuple[int, ...]]] = []
    progress: list[RoundProgress] = []

    class Recording(LocalTrainer):
        def stream(self, round_index, owners, global_model):  # type: ignore[no-untyped-def]
            trained.append((round_index, tuple(owners)))
            return super().stream(round_index, owners, global_model)

    result, report = run_virtual_federation(
        job=job,
        names=names,
        trainer=Recording(TrainingSpec(task=TASK, partition=part, train=job.train)),
        initial_model=initial_model(),
        tee=tee,
        policy=policy,
        on_progress=progress.append,
    )
    assert result.final is not None
    assert [r for r, _ in trained] == [1, 2, 3]
    assert all(len(owners) == 2 for _, owners in trained)
    assert [p.members for p in progress] == [owners for _, owners in trained]
    assert [r.contributions for r in result.final.receipts] == [2, 2, 2]
    assert all(r.cohort is not None and len(r.cohort) == 2 for r in result.final.receipts)
    assert report.uploads == 6 and report.refused == {}


def test_a_receipt_omitting_an_update_is_not_signed(
    sim_enclave: tuple[TeeBackend, AttestationPolicy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver checks every contributor's commitment in the sealed receipt before anyone signs: an update the
    receipt leaves out (here: the driver remembers another commitment than the one the node folded) stops it."""
    import enclavefl.sim.virtual_owners as virtual_owners

    tee, policy = sim_enclave
    part = OwnerPartition(count=2, data=partition(2).data)
    names = part.owner_names()
    job = small_job(names, rounds=1)
    original = virtual_owners._contribute

    def contribute(*args, **kwargs):  # type: ignore[no-untyped-def]
        progress = original(*args, **kwargs)
        accepted = args[5].accepted
        for name in accepted:
            accepted[name] = b"\x00" * 32  # what this owner uploaded, as far as it knows: not in the receipt
        return progress

    monkeypatch.setattr(virtual_owners, "_contribute", contribute)
    with pytest.raises(ReceiptError):
        run_virtual_federation(
            job=job,
            names=names,
            trainer=LocalTrainer(TrainingSpec(task=TASK, partition=part, train=TrainConfig(local_steps=1, lr=0.1))),
            initial_model=initial_model(),
            tee=tee,
            policy=policy,
        )


def test_the_ray_backend_without_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import enclavefl

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ModuleNotFoundError, match=r"needs Ray: pip install 'enclavefl\[ray\]'"):
        enclavefl.simulate(TASK, partition(2), rounds=1, backend="ray")

"""Cohorts (issue 26 item 1): the job field and its digest, the enclave's draw, what the worker admits and counts,
and the receipt's commitment to the cohort."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from two_phase import acknowledge

from enclavefl.api.jobs import cohort_form
from enclavefl.core.codec import encode_weights
from enclavefl.core.cohort import member_commitment
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.receipt_checks import check_cohort_claim
from enclavefl.core.receipts import RoundReceipt, SignedReceipt
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.update_message import UpdateMessage
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.cohort import RoundCohorts
from enclavefl.enclave.identity import NodeIdentity
from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import CohortMismatch, JobSpecError, NotInCohort, ReleaseWithheld
from enclavefl.transport.owner_tls import OwnerCredentials

OWNERS = tuple(f"o{i}" for i in range(6))


def model(value: float) -> ModelWeights:
    return ModelWeights({"w": np.full((2, 2), value, np.float32)})


def job(**cohort: object) -> JobSpec:
    initial = model(0.0)
    return JobSpec(
        name="cohorts",
        rounds=5,
        train=TrainConfig(local_steps=1),
        min_contributions=cohort.pop("k", 1),  # type: ignore[arg-type]
        data_owners=tuple(DataOwnerSpec(name=n) for n in OWNERS),
        model_schema=initial.schema,
        initial_model_sha256=initial.sha256().hex(),
        **cohort,  # type: ignore[arg-type]
    )


def identity(scalar: int) -> NodeIdentity:
    """A fixed node key: the draws below are then reproducible (a real node makes its key with the CSPRNG)."""
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return NodeIdentity.from_private_der(der)


def upload(worker: SecureWorker, owner: str, round_index: int) -> None:
    message = UpdateMessage.of(owner=owner, round=round_index, num_examples=1, payload=encode_weights(model(1.0)))
    worker.submit_update(message.incoming())


# --- the job field ----------------------------------------------------------------------------
def test_a_cohort_enters_the_digest_only_when_set_and_each_form_is_its_own_job() -> None:
    plain = job()
    assert "clients_per_round" not in plain.to_canonical() and plain.cohort_size is None
    digests = {plain.digest(), job(clients_per_round=3).digest(), job(fraction_per_round=0.5).digest()}
    assert len(digests) == 3
    assert job(clients_per_round=3).cohort_size == 3 and job(fraction_per_round=0.5).cohort_size == 3
    assert job(fraction_per_round=0.1).cohort_size == 1  # at least one owner per round
    assert dataclasses.replace(job(), name="x", fraction_per_round=1 / 3).cohort_size == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"clients_per_round": 2, "fraction_per_round": 0.5}, "not both"),
        ({"clients_per_round": 0}, "positive integer"),
        ({"clients_per_round": True}, "positive integer"),
        ({"clients_per_round": 7}, "exceeds the 6 enrolled"),
        ({"fraction_per_round": 0.0}, r"in \(0, 1\]"),
        ({"fraction_per_round": 1.5}, r"in \(0, 1\]"),
        ({"clients_per_round": 2, "k": 3}, "K = 3 exceeds the cohort of 2"),
    ],
)
def test_a_cohort_the_job_cannot_fill_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        job(**fields)


def test_cohorts_need_enrolled_owners_and_plaintext_updates() -> None:
    with pytest.raises(JobSpecError, match="enrols none"):
        dataclasses.replace(job(), data_owners=(), clients_per_round=1)
    masked = SecureAggregationSpec(degree=4, threshold=4, clip_norm=1.0)
    with pytest.raises(JobSpecError, match="secure_aggregation"):
        dataclasses.replace(job(), secure_aggregation=masked, clients_per_round=5)


def test_the_job_file_keeps_the_cohort_and_the_digest(tmp_path: Path) -> None:
    owners = tuple(
        DataOwnerSpec(name=n, certificate_pem=OwnerCredentials.generate(n).certificate_pem.decode()) for n in OWNERS
    )
    for cohort in ({"clients_per_round": 4}, {"fraction_per_round": 0.25}):
        spec = dataclasses.replace(job(), data_owners=owners, **cohort)  # type: ignore[arg-type]
        path = tmp_path / "job.toml"
        path.write_text(dump_job(spec))
        loaded = load_job(path)
        assert loaded.digest() == spec.digest()
        assert (loaded.clients_per_round, loaded.fraction_per_round) == (
            spec.clients_per_round,
            spec.fraction_per_round,
        )


@pytest.mark.parametrize(
    ("value", "form"),
    [
        ("20", (20, None)),
        ("0.1", (None, 0.1)),
        ("10%", (None, 0.1)),
        (3, (3, None)),
        (0.5, (None, 0.5)),
        (None, (None, None)),
    ],
)
def test_one_clients_per_round_value_is_a_count_or_a_fraction(value: object, form: tuple[object, object]) -> None:
    assert cohort_form(value) == form  # type: ignore[arg-type]


def test_a_clients_per_round_that_is_neither_is_refused() -> None:
    with pytest.raises(JobSpecError, match="neither a count"):
        cohort_form("many")


# --- the draw ---------------------------------------------------------------------------------
def test_the_draw_is_fixed_per_round_for_one_node_key_and_differs_across_rounds_and_keys() -> None:
    spec = job(clients_per_round=3)
    first = RoundCohorts.for_job(spec, identity(7))
    again = RoundCohorts.for_job(spec, identity(7))  # a restarted enclave: the sealed key, a new object
    other = RoundCohorts.for_job(spec, identity(8))
    assert first is not None and again is not None and other is not None
    rounds = range(1, 21)

    assert [first.draw(r) for r in rounds] == [again.draw(r) for r in rounds]
    assert all(len(first.draw(r).members) == 3 and len(first.draw(r).commitments) == 3 for r in rounds)
    assert len({first.draw(r).members for r in rounds}) > 5  # a new cohort each round
    assert [first.draw(r).members for r in rounds] != [other.draw(r).members for r in rounds]


def test_every_owner_is_drawn_about_as_often() -> None:
    cohorts = RoundCohorts.for_job(job(clients_per_round=2), identity(11))
    assert cohorts is not None
    counts = Counter(name for r in range(1, 601) for name in cohorts.draw(r).members)

    assert set(counts) == set(OWNERS)
    assert all(150 <= n <= 250 for n in counts.values()), counts  # 200 expected; sd 11.5


def test_each_owners_claim_opens_its_own_entry_of_the_commitment() -> None:
    spec = job(clients_per_round=2)
    cohorts = RoundCohorts.for_job(spec, identity(3))
    assert cohorts is not None
    cohort = cohorts.draw(4)
    for name in OWNERS:
        member, token = cohorts.claim(4, name)
        assert member == (name in cohort.members)
        check_cohort_claim(
            cohort.commitments, job_digest=spec.digest(), round_index=4, size=2, token=token, member=member
        )
        with pytest.raises(CohortMismatch):  # the opposite claim does not verify
            check_cohort_claim(
                cohort.commitments, job_digest=spec.digest(), round_index=4, size=2, token=token, member=not member
            )
    _, token = cohorts.claim(4, OWNERS[0])
    assert member_commitment(job_digest=spec.digest(), round_index=5, token=token) not in cohort.commitments


# --- the worker ---------------------------------------------------------------------------------
def test_only_the_cohort_uploads_k_counts_its_updates_and_the_receipt_commits_to_it() -> None:
    spec = job(clients_per_round=3, k=2)
    worker = SecureWorker(job=spec, initial_model=model(0.0), identity=identity(5))
    assert worker.cohorts is not None
    index = worker.open_round()
    members = sorted(worker.cohorts.draw(index).members)
    outsider = next(n for n in OWNERS if n not in members)

    with pytest.raises(NotInCohort, match=f"{outsider!r} is not in the cohort"):
        upload(worker, outsider, index)
    for name in members[:2]:
        upload(worker, name, index)
    receipt = worker.close_round()

    assert receipt.receipt.contributions == 2 and worker.rejections["NotInCohort"] == 1
    assert receipt.receipt.cohort == worker.cohorts.draw(index).commitments
    assert all(name.encode() not in receipt.body for name in OWNERS)  # names nobody
    assert SignedReceipt.parse(receipt.body, receipt.signature).receipt.cohort == receipt.receipt.cohort


def test_the_release_counts_the_cohorts_signatures_every_contributor_and_a_majority_of_the_cohort() -> None:
    spec = job(clients_per_round=3, k=1)
    worker = SecureWorker(job=spec, initial_model=model(0.0), identity=identity(9))
    assert worker.cohorts is not None
    index = worker.open_round()
    first, second, third = sorted(worker.cohorts.draw(index).members)
    outsider = next(n for n in OWNERS if n not in (first, second, third))
    upload(worker, first, index)
    receipt = worker.close_round()

    with pytest.raises(NotInCohort, match="not in round 1's cohort"):
        acknowledge(worker, receipt, [outsider])
    acknowledge(worker, receipt, [first])
    assert worker.signatures_missing() == 1  # a majority of 3 is 2, not 4 of the 6 enrolled
    with pytest.raises(ReleaseWithheld):
        worker.release_round()
    acknowledge(worker, receipt, [third])
    assert worker.release_round().round == 1


def test_a_job_without_cohorts_signs_the_receipts_it_always_did() -> None:
    receipt = RoundReceipt(
        job_digest=bytes(32),
        round=1,
        previous_sha256=bytes(32),
        global_model_sha256=bytes(32),
        contributions=2,
        update_commitments=(),
    )
    assert b"cohort" not in receipt.canonical_bytes()
    with_cohort = dataclasses.replace(receipt, cohort=(b"\x01" * 32, b"\x02" * 32))
    assert RoundReceipt.from_canonical_bytes(with_cohort.canonical_bytes()) == with_cohort

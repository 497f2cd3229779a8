"""The unmasked sum equals the plaintext sum within the fixed-point bound, whoever drops out and when."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from masked_protocol import CONTEXT, masked_round

from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.errors import SecureAggregationViolation, UnmaskingFailed
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.masking import MaskingSession


def _updates(count: int, size: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)  # test data only; every mask comes from AES-CTR
    return {f"owner-{i:02d}": rng.uniform(-1, 1, size) for i in range(count)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(3, 12),
    size=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    bits=st.sampled_from([32, 64]),
    data=st.data(),
)
def test_unmasked_sum_equals_plaintext_sum_within_the_bound(
    count: int, size: int, seed: int, bits: int, data: st.DataObject
) -> None:
    spec = SecureAggregationSpec(degree=4, threshold=3, scale=2.0**12, modulus_bits=bits, clip_norm=1.0)
    updates = _updates(count, size, seed)
    names = sorted(updates)
    # each owner has min(4, count - 1) + 1 holders; keep every neighbourhood above the threshold
    tolerated = spec.tolerated_dropouts(count)
    dropped = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=min(tolerated, count - 3)))
    split = data.draw(st.integers(0, len(dropped)))
    before, after = dropped[:split], dropped[split:]
    total = masked_round(updates, spec=spec, drop_before_masking=before, drop_after_masking=after)
    expected = sum(updates[n] for n in names if n not in dropped)
    bound = FixedPoint(scale=spec.scale, bits=bits).sum_error_bound(count - len(dropped))
    assert np.max(np.abs(total - expected)) <= bound


def test_dropping_more_neighbours_than_tolerated_releases_nothing() -> None:
    spec = SecureAggregationSpec(degree=2, threshold=2, scale=2.0**12, clip_norm=1.0)
    updates = _updates(6, 10, 1)
    # with degree 2 each owner has 3 holders, threshold 2: two dropped neighbours of one owner are too many
    with pytest.raises(UnmaskingFailed, match="threshold"):
        masked_round(updates, spec=spec, drop_after_masking=sorted(updates)[:3])


def test_an_owner_answers_the_unmasking_request_once() -> None:
    spec = SecureAggregationSpec(degree=2, threshold=2)
    session = MaskingSession(owner="a", spec=spec, context=CONTEXT)
    others = {n: MaskingSession(owner=n, spec=spec, context=CONTEXT) for n in ("b", "c")}
    roster = [session.advertisement(), *(o.advertisement() for o in others.values())]
    session.share_bundles(roster)
    bundles = [b for o in others.values() for b in o.share_bundles(roster) if b.recipient == "a"]
    session.receive_bundles(bundles)
    first = session.unmask_shares(["a", "b"])
    assert set(first.self_mask_shares) == {"a", "b"} and set(first.mask_key_shares) == {"c"}
    with pytest.raises(SecureAggregationViolation, match="already answered"):
        session.unmask_shares(["a", "b", "c"])  # the relay now claims c survived: it would get both of c's shares


def test_an_owner_counted_as_dropped_refuses_to_answer() -> None:
    spec = SecureAggregationSpec(degree=2, threshold=2)
    sessions = {n: MaskingSession(owner=n, spec=spec, context=CONTEXT) for n in ("a", "b", "c")}
    roster = [s.advertisement() for s in sessions.values()]
    sessions["a"].share_bundles(roster)
    with pytest.raises(SecureAggregationViolation, match="not counted as a survivor"):
        sessions["a"].unmask_shares(["b", "c"])


def test_a_bundle_altered_by_the_relay_does_not_open() -> None:
    spec = SecureAggregationSpec(degree=2, threshold=2)
    sessions = {n: MaskingSession(owner=n, spec=spec, context=CONTEXT) for n in ("a", "b", "c")}
    roster = [s.advertisement() for s in sessions.values()]
    sessions["a"].share_bundles(roster)
    bundle = next(b for b in sessions["b"].share_bundles(roster) if b.recipient == "a")
    flipped = bundle.ciphertext[:-1] + bytes([bundle.ciphertext[-1] ^ 1])
    forged = type(bundle)(sender="b", recipient="a", ciphertext=flipped)
    with pytest.raises(SecureAggregationViolation, match="does not open"):
        sessions["a"].receive_bundles([forged])


def _round_with_answers(spec: SecureAggregationSpec, names: list[str]):  # type: ignore[no-untyped-def]
    from enclavefl.secagg.graph import harary_neighbours

    sessions = {n: MaskingSession(owner=n, spec=spec, context=CONTEXT) for n in names}
    roster = [s.advertisement() for s in sessions.values()]
    outbox = {n: s.share_bundles(roster) for n, s in sessions.items()}
    for n, s in sessions.items():
        s.receive_bundles([b for bs in outbox.values() for b in bs if b.recipient == n])
    answers = {n: s.unmask_shares(names) for n, s in sessions.items()}
    neighbours = harary_neighbours(names, degree=spec.degree, seed=CONTEXT)
    return {ad.owner: ad for ad in roster}, neighbours, answers


def test_a_corrupt_share_from_a_malicious_owner_is_caught_not_released() -> None:
    from dataclasses import replace

    from enclavefl.secagg import shamir
    from enclavefl.secagg.unmask import recover_sum_inplace

    spec = SecureAggregationSpec(degree=2, threshold=2)
    names = ["a", "b", "c", "d"]
    roster, neighbours, answers = _round_with_answers(spec, names)
    good = shamir.Share.from_bytes(answers["a"].self_mask_shares["a"])
    forged = shamir.Share(x=good.x, y=(good.y + 1) % shamir.PRIME).to_bytes()
    answers["a"] = replace(answers["a"], self_mask_shares={**answers["a"].self_mask_shares, "a": forged})
    with pytest.raises(UnmaskingFailed, match="self-mask seed"):
        recover_sum_inplace(
            np.zeros(4, dtype=np.uint64),
            roster=roster,
            neighbours=neighbours,
            sharers=names,
            survivors=names,
            answers=answers,
            threshold=2,
            context=CONTEXT,
        )


def test_a_holder_cannot_answer_under_another_holders_index() -> None:
    from dataclasses import replace

    from enclavefl.secagg.unmask import recover_sum_inplace

    spec = SecureAggregationSpec(degree=2, threshold=2)
    names = ["a", "b", "c", "d"]
    roster, neighbours, answers = _round_with_answers(spec, names)
    subject = neighbours["a"][0]
    stolen = answers[subject].self_mask_shares[subject]  # the subject's own share, replayed by "a"
    answers["a"] = replace(answers["a"], self_mask_shares={**answers["a"].self_mask_shares, subject: stolen})
    with pytest.raises(UnmaskingFailed, match="another holder's index"):
        recover_sum_inplace(
            np.zeros(4, dtype=np.uint64),
            roster=roster,
            neighbours=neighbours,
            sharers=names,
            survivors=names,
            answers=answers,
            threshold=2,
            context=CONTEXT,
        )

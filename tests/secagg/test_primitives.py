"""Fixed point, keystream masks, Shamir sharing and the neighbour graph, each against its stated property."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavefl.secagg import shamir
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.graph import graph_seed, harary_neighbours, holders_of
from enclavefl.secagg.prg import add_mask_inplace, keystream, raw_keystream_into


@given(
    values=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=50),
    bits=st.sampled_from([32, 64]),
    scale=st.sampled_from([1.0, 256.0, 65536.0]),
)
def test_fixed_point_round_trip_within_half_a_step(values: list[float], bits: int, scale: float) -> None:
    codec = FixedPoint(scale=scale, bits=bits)
    x = np.array(values)
    assert np.all(np.abs(codec.decode(codec.encode(x)) - x) <= codec.sum_error_bound(1))


def test_fixed_point_refuses_nan_and_values_that_would_wrap() -> None:
    codec = FixedPoint(scale=2.0**16, bits=32)
    with pytest.raises(ValueError, match="non-finite"):
        codec.encode(np.array([np.nan]))
    with pytest.raises(ValueError, match="beyond"):
        codec.encode(np.array([codec.max_magnitude * 2]))


def test_negative_values_sum_correctly_through_wrap_around() -> None:
    codec = FixedPoint(scale=4.0, bits=32)
    total = codec.encode(np.array([-1.25, 3.0])) + codec.encode(np.array([0.5, -5.0]))
    assert codec.decode(total).tolist() == [-0.75, -2.0]


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize("count", [1, 7, 70_001])
def test_a_mask_added_then_subtracted_leaves_the_vector_unchanged(dtype: type, count: int) -> None:
    seed = secrets.token_bytes(32)
    original = np.arange(count, dtype=dtype)
    vector = original.copy()
    add_mask_inplace(vector, seed)
    assert not np.array_equal(vector, original)
    add_mask_inplace(vector, seed, sign=-1)
    assert np.array_equal(vector, original)


def test_the_mask_is_the_raw_aes_ctr_keystream_read_as_integers() -> None:
    seed = secrets.token_bytes(32)
    raw = bytearray(8 * 40_000 + 15)
    raw_keystream_into(seed, raw)
    assert np.array_equal(keystream(seed, 40_000, np.uint64), np.frombuffer(bytes(raw[:-15]), dtype=np.uint64))
    assert not np.array_equal(keystream(seed, 8, np.uint64), keystream(secrets.token_bytes(32), 8, np.uint64))


@settings(max_examples=30)
@given(holders=st.integers(1, 12), data=st.data())
def test_any_threshold_shares_rebuild_the_secret(holders: int, data: st.DataObject) -> None:
    threshold = data.draw(st.integers(1, holders))
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, holders=holders, threshold=threshold)
    chosen = data.draw(st.permutations(shares))[:threshold]
    assert shamir.reconstruct(chosen) == secret


def test_fewer_than_threshold_shares_do_not_rebuild_the_secret() -> None:
    secret = secrets.token_bytes(32)
    shares = shamir.split(secret, holders=5, threshold=3)
    with pytest.raises(ValueError, match="32-byte"):  # overwhelmingly a field element far above 2^256
        shamir.reconstruct(shares[:2])


def test_share_bytes_round_trip_and_refuse_x_zero() -> None:
    share = shamir.split(secrets.token_bytes(32), holders=3, threshold=2)[2]
    assert shamir.Share.from_bytes(share.to_bytes()) == share
    with pytest.raises(ValueError):
        shamir.Share.from_bytes(bytes(2) + share.to_bytes()[2:])


@given(count=st.integers(2, 60), half=st.integers(1, 5))
def test_harary_graph_is_symmetric_and_regular(count: int, half: int) -> None:
    degree = 2 * half
    names = [f"owner-{i:02d}" for i in range(count)]
    graph = harary_neighbours(names, degree=degree, seed=graph_seed(job_digest=bytes(32), round_index=1, attempt=1))
    for name, linked in graph.items():
        assert name not in linked
        assert len(linked) == min(degree, count - 1)
        assert all(name in graph[other] for other in linked)
        assert holders_of(name, graph) == tuple(sorted((*linked, name)))


def test_graph_changes_with_the_round_and_everyone_derives_the_same() -> None:
    names = [f"o{i}" for i in range(30)]
    first = graph_seed(job_digest=bytes(32), round_index=1, attempt=1)
    second = graph_seed(job_digest=bytes(32), round_index=2, attempt=1)
    assert harary_neighbours(names, degree=4, seed=first) == harary_neighbours(reversed(names), degree=4, seed=first)
    assert harary_neighbours(names, degree=4, seed=first) != harary_neighbours(names, degree=4, seed=second)

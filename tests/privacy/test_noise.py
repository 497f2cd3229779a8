"""The CSPRNG Gaussian source: right moments, reproducible only under an injected key."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.privacy.noise import ChaCha20Gaussian

N = 1_000_000


def draws(n: int = N, key: bytes = bytes(range(32))) -> np.ndarray:
    out = np.empty(n, dtype=np.float64)
    ChaCha20Gaussian(key=key).standard_normal_into(out)
    return out


def test_standard_normal_draws_have_mean_zero_and_unit_variance() -> None:
    x = draws()

    # 5 standard errors: mean has se 1/sqrt(N), variance has se sqrt(2/N)
    assert abs(x.mean()) < 5 / np.sqrt(N)
    assert abs(x.var() - 1.0) < 5 * np.sqrt(2 / N)


def test_standard_normal_draws_have_gaussian_tails_and_no_skew() -> None:
    x = draws()

    assert abs(np.mean(x**3)) < 5 * np.sqrt(15 / N)
    assert abs(np.mean(x**4) - 3.0) < 5 * np.sqrt(96 / N)
    assert abs(np.mean(np.abs(x) > 1.959964) - 0.05) < 5 * np.sqrt(0.05 * 0.95 / N)


def test_same_key_gives_the_same_stream_and_another_key_another() -> None:
    a, b, c = draws(1001), draws(1001), draws(1001, key=bytes(32))

    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_urandom_sources_differ() -> None:
    a, b = np.empty(64), np.empty(64)

    ChaCha20Gaussian.from_urandom().standard_normal_into(a)
    ChaCha20Gaussian.from_urandom().standard_normal_into(b)

    assert not np.allclose(a, b)


def test_fills_odd_sizes_across_chunk_boundaries_with_distinct_finite_values() -> None:
    x = np.zeros((3, 87_381), dtype=np.float64)  # 262,143 values: several chunks, odd length

    ChaCha20Gaussian(key=bytes(32)).standard_normal_into(x)

    assert np.isfinite(x).all()
    assert np.unique(x).size == x.size


def test_consecutive_calls_continue_the_stream() -> None:
    source = ChaCha20Gaussian(key=bytes(32))
    first, second = np.empty(10), np.empty(10)

    source.standard_normal_into(first)
    source.standard_normal_into(second)

    assert not np.allclose(first, second)


@pytest.mark.parametrize("buffer", [np.empty(4, dtype=np.float32), np.empty((4, 4))[:, 0]])
def test_refuses_buffers_it_cannot_fill_in_place(buffer: np.ndarray) -> None:
    with pytest.raises(ValueError):
        ChaCha20Gaussian(key=bytes(32)).standard_normal_into(buffer)


def test_refuses_a_key_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        ChaCha20Gaussian(key=bytes(16))

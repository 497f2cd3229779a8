"""The ctypes axpy into numpy's own BLAS computes exactly what numpy computes, or is not used."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.aggregation import blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.25, -3.0, 1e-3])
def test_axpy_matches_numpy_for_blas_dtypes(dtype: type, alpha: float) -> None:
    rng = np.random.default_rng(1)  # test data only
    acc = rng.standard_normal(100_003).astype(dtype)
    x = rng.standard_normal(100_003).astype(dtype)
    expected = acc.astype(np.float64) + alpha * x.astype(np.float64)

    blas.axpy_inplace(acc, x, alpha)

    np.testing.assert_allclose(acc, expected, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_numpys_blas_is_found_on_this_wheel() -> None:
    # PyPI's numpy wheels ship scipy-openblas; if this fails the fold silently runs at numpy speed.
    assert blas._blas_axpy("f") is not None
    assert blas._blas_axpy("d") is not None


def test_numpy_fallback_equals_blas_path() -> None:
    rng = np.random.default_rng(2)  # test data only
    x = rng.standard_normal(3 * blas._BLOCK + 17).astype(np.float32)
    via_blas = np.ones_like(x)
    via_numpy = np.ones_like(x)

    blas.axpy_inplace(via_blas, x, 0.5)
    blas._numpy_axpy(via_numpy, x, 0.5)

    np.testing.assert_allclose(via_blas, via_numpy, rtol=1e-6)


def test_non_contiguous_and_mixed_dtype_inputs_take_the_numpy_path() -> None:
    acc = np.zeros((4, 6), dtype=np.float64)
    x = np.arange(48, dtype=np.float32).reshape(4, 12)[:, ::2]  # strided view, other dtype

    blas.axpy_inplace(acc, x, 2.0)

    np.testing.assert_array_equal(acc, 2.0 * x.astype(np.float64))


def test_size_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="accumulator of 4"):
        blas.axpy_inplace(np.zeros(4, np.float32), np.zeros(5, np.float32), 0.5)

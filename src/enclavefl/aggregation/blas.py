"""acc += alpha * x in one pass, through the BLAS that numpy already ships (no scipy in the enclave).

    axpy_inplace(acc, update, 0.25)      # fused where BLAS supports the dtype, numpy otherwise

numpy links OpenBLAS but exposes no axpy; numpy alone needs a temporary or two passes (0.55x of an in-place
add, measured by benchmarks/bench_fold.py) where BLAS axpy moves the same bytes as the add. So the wheel's own
library is called through ctypes: on PyPI wheels it is `numpy.libs/libscipy_openblas64_*.so` exporting
`scipy_cblas_saxpy64_` with 64-bit integers. The binding is checked once against numpy on a small vector
before use; any library, symbol or result that does not match leaves the numpy path in place.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from enclavefl.core.weights import Array

log = logging.getLogger(__name__)

# (symbol, integer type) in the order tried: numpy's ILP64 scipy-openblas, then generic ILP64 and LP64 CBLAS.
_SYMBOLS: Final = (
    ("scipy_cblas_{t}axpy64_", ctypes.c_int64),
    ("cblas_{t}axpy64_", ctypes.c_int64),
    ("cblas_{t}axpy", ctypes.c_int),
)
_BLOCK: Final = 1 << 18  # elements per numpy fallback block: a block and its scratch stay in cache

Axpy = Callable[[Array, Array, float], None]


def axpy_inplace(acc: Array, x: Array, alpha: float) -> None:
    """acc += alpha * x; acc must be C-contiguous; x is read once (converted if not contiguous)."""
    flat_acc = acc.reshape(-1)
    flat_x = np.ascontiguousarray(x).reshape(-1)
    if flat_acc.size != flat_x.size:
        raise ValueError(f"axpy: {flat_x.size} values into an accumulator of {flat_acc.size}")
    if alpha == 1.0:
        np.add(flat_acc, flat_x, out=flat_acc, casting="unsafe")
        return
    blas = _blas_axpy(flat_acc.dtype.char) if flat_x.dtype == flat_acc.dtype else None
    if blas is not None:
        blas(flat_acc, flat_x, alpha)
    else:
        _numpy_axpy(flat_acc, flat_x, alpha)


def _numpy_axpy(acc: Array, x: Array, alpha: float) -> None:
    scratch = np.empty(min(_BLOCK, acc.size), dtype=acc.dtype)
    for start in range(0, acc.size, _BLOCK):
        stop = min(start + _BLOCK, acc.size)
        block = scratch[: stop - start]
        np.multiply(x[start:stop], alpha, out=block, casting="unsafe")
        np.add(acc[start:stop], block, out=acc[start:stop])


@functools.cache
def _blas_axpy(dtype_char: str) -> Axpy | None:
    """A checked ctypes axpy for float32 ('f') or float64 ('d') from numpy's BLAS, or None."""
    letter = {"f": "s", "d": "d"}.get(dtype_char)
    if letter is None:
        return None
    c_float = ctypes.c_float if letter == "s" else ctypes.c_double
    for library in _numpy_blas_libraries():
        for template, c_int in _SYMBOLS:
            function = getattr(library, template.format(t=letter), None)
            if function is None:
                continue
            function.restype = None
            function.argtypes = [c_int, c_float, ctypes.c_void_p, c_int, ctypes.c_void_p, c_int]

            def axpy(acc: Array, x: Array, alpha: float, _f: Any = function) -> None:
                _f(acc.size, alpha, x.ctypes.data, 1, acc.ctypes.data, 1)

            if _agrees_with_numpy(axpy, np.dtype(dtype_char)):
                return axpy
            log.warning("BLAS %s from %s disagrees with numpy; using numpy", template, library)
    return None


def _numpy_blas_libraries() -> list[ctypes.CDLL]:
    root = Path(np.__file__).parent
    candidates = sorted((root.parent / "numpy.libs").glob("lib*openblas*.so*"))
    libraries = []
    for path in candidates:
        try:
            libraries.append(ctypes.CDLL(str(path)))  # already mapped by numpy: this only takes a handle
        except OSError:
            continue
    return libraries


def _agrees_with_numpy(axpy: Axpy, dtype: np.dtype[np.generic]) -> bool:
    acc = np.arange(1, 8, dtype=dtype)
    x = np.arange(7, 0, -1, dtype=dtype)
    expected = acc + dtype.type(0.5) * x
    axpy(acc, x, 0.5)
    return bool(np.array_equal(acc, expected))

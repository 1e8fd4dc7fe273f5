"""The one tolerance check of the project's tests, validation proofs and benchmarks.

It needs only NumPy, like the rest of :mod:`truesparse.reference`, so the SymPy proofs can use
it without the compiled core.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_TOLERANCES", "assert_close"]

# Default tolerances per dtype: (rtol, atol). atol is scaled by max(1, max|expected|), so
# small entries of a large-magnitude array are compared at the array's scale.
DEFAULT_TOLERANCES = {
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-10, 1e-12),
}


def assert_close(actual, expected, *, dtype=None, rtol=None, atol=None):
    """Check shape, then dtype, then values with per-dtype default tolerances.

    ``dtype`` is the dtype ``actual`` must have (default: ``expected``'s dtype when it is
    an ndarray, otherwise no dtype check). The value tolerances default to those of
    ``dtype`` (or ``actual``'s dtype): |a - e| <= atol * max(1, max|e|) + rtol * |e|.
    """
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"shape mismatch: actual {a.shape}, expected {e.shape}"
    if dtype is None and isinstance(expected, np.ndarray):
        dtype = expected.dtype
    if dtype is not None:
        assert a.dtype == np.dtype(dtype), (
            f"dtype mismatch: actual {a.dtype}, expected {np.dtype(dtype)}"
        )
    tol_dtype = np.dtype(dtype) if dtype is not None else a.dtype
    d_rtol, d_atol = DEFAULT_TOLERANCES.get(tol_dtype, (0.0, 0.0))
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    if a.dtype.kind in "biu" and e.dtype.kind in "biu":
        bad = a != e
    else:
        a64 = a.astype(np.float64)
        e64 = e.astype(np.float64)
        assert np.array_equal(np.isnan(a64), np.isnan(e64)), "NaN positions differ"
        finite = np.isfinite(e64)
        assert np.array_equal(a64[~finite], e64[~finite], equal_nan=True), (
            "non-finite values differ"
        )
        scale = max(1.0, float(np.max(np.abs(e64[finite])))) if finite.any() else 1.0
        err = np.where(finite, np.abs(a64 - e64), 0.0)
        bad = err > atol * scale + rtol * np.abs(np.where(finite, e64, 0.0))
    if np.any(bad):
        idx = np.argwhere(bad)
        first = tuple(int(i) for i in idx[0]) if a.ndim else ()
        raise AssertionError(
            f"{int(np.count_nonzero(bad))} of {a.size} values differ (rtol={rtol}, atol={atol}); "
            f"first at {first}: actual {a[first]!r}, expected {e[first]!r}"
        )

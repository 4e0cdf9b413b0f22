"""scipy.ndimage's boundary rules, written out so they can be applied chunk by chunk.

Three rules, all per axis (see shared notes ``scipy-semantics.md``):

* :func:`fold_coordinates` — what scipy does to a coordinate before interpolating;
* :func:`tap_source_index` — where an interpolation tap outside the coefficient array reads;
* :func:`filter_source_index` — the infinite extension of the (pre-padded) samples under
  which a plain recursive filter reproduces scipy's boundary-initialised spline prefilter.

Indices and coordinates are in the *domain* of the coefficient array: ``[-pad, n - 1 + pad]``
where ``pad`` is 12 for prefiltered ``nearest``/``grid-constant`` and 0 otherwise.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "fold_coordinates",
    "fold_interval",
    "tap_source_index",
    "filter_source_index",
    "tap_range",
]

#: A tap index outside the array in ``grid-constant`` mode reads this marker: cval.
CVAL = np.iinfo(np.int64).min


def _trunc_div(a, b):
    """C's ``(npy_intp)(a / b)``: division in floats, truncated toward zero."""
    return np.trunc(a / b)


def fold_coordinates(c, n: int, mode: str, pad: int = 0, order: int = 5):
    """Apply scipy's coordinate rule for one axis of ``n`` samples.

    Parameters
    ----------
    c : ndarray of float64
        Coordinates along the axis (unchanged: a new array is returned).
    n : int
        Axis length of the input (before any pre-padding).
    mode : str
        Canonical mode name (see :data:`transfuse.planner.options.MODES`).
    pad : int
        Pre-padding of the coefficient array (12 or 0).
    order : int
        Spline order; ``grid-constant`` coordinates further than ``pad + order + 2`` outside
        are clamped there (every tap already reads ``cval``).

    Returns
    -------
    folded : ndarray
        Coordinates to interpolate at. For ``constant``, points outside ``[0, n-1]`` are
        replaced by 0 and flagged in ``outside``.
    outside : ndarray of bool or None
        For ``constant``, the points whose result is ``cval``.

    Examples
    --------
    >>> fold_coordinates(np.array([-1.0, 5.5, 9.0]), 5, "mirror")[0]
    array([1. , 2.5, 1. ])
    """
    c = np.array(c, dtype=np.float64, copy=True)
    if mode == "constant":
        outside = (c < 0) | (c > n - 1)
        c[outside] = 0.0
        return c, outside
    if mode in ("nearest", "grid-constant"):
        # scipy leaves these coordinates alone; taps outside the (padded) array are clamped
        # (nearest) or read cval. Beyond `reach` every tap does so: move such points back by
        # whole samples (exact in floating point, so the spline weights are unchanged).
        reach = pad + order + 2.0
        far_hi = c > n - 1 + reach
        c[far_hi] -= np.floor(c[far_hi] - (n - 1 + reach))
        far_lo = c < -reach
        c[far_lo] += np.floor(-reach - c[far_lo])
        # from 2**52 on every float is a whole number, and the subtraction above loses it:
        # such points sit exactly at the edge of the reach (same weights: no fraction)
        c[far_hi & ~(c <= n - 1 + reach + 1)] = n - 1 + reach
        c[far_lo & ~(c >= -reach - 1)] = -reach
        return c, None
    if n <= 1:
        return np.zeros_like(c), None
    lo = c < 0
    hi = c > n - 1
    if mode == "mirror":
        s2 = 2 * n - 2
        x = c[lo]
        x = s2 * _trunc_div(-x, s2) + x
        c[lo] = np.where(x <= 1 - n, x + s2, -x)
        x = c[hi]
        x = x - s2 * _trunc_div(x, s2)
        c[hi] = np.where(x >= n, s2 - x, x)
    elif mode == "reflect":
        s2 = 2 * n
        x = c[lo]
        x = np.where(x < -s2, s2 * _trunc_div(-x, s2) + x, x)
        c[lo] = np.where(x < -n, x + s2, np.where(x > -1e-15, 1e-15, -x) - 1)
        x = c[hi]
        x = x - s2 * _trunc_div(x, s2)
        c[hi] = np.where(x >= n, s2 - x - 1, x)
    elif mode == "wrap":
        sz = n - 1
        x = c[lo]
        c[lo] = x + sz * (_trunc_div(-x, sz) + 1)
        x = c[hi]
        c[hi] = x - sz * _trunc_div(x, sz)
    elif mode == "grid-wrap":
        x = c[lo]
        c[lo] = x + n * (_trunc_div(-1 - x, n) + 1)
        x = c[hi]
        c[hi] = x - n * _trunc_div(x, n)
    else:  # pragma: no cover - options are validated earlier
        raise ValueError(f"mode={mode!r}")
    return c, None


#: Period of each folding mode; within a period the fold is linear between the
#: breakpoints ``k * period + r`` for ``r`` in ``(0, n - 1, n)``.
_FOLD_PERIOD = {
    "mirror": lambda n: 2 * n - 2,
    "reflect": lambda n: 2 * n,
    "wrap": lambda n: n - 1,
    "grid-wrap": lambda n: n,
}


def fold_interval(a: float, b: float, n: int, mode: str, pad: int, order: int):
    """The hull of ``fold_coordinates`` over all coordinates in ``[a, b]``.

    Exact: the fold is linear between breakpoints, so the hull is reached at the ends of
    ``[a, b]`` or next to a breakpoint inside it. Returns ``None`` when every point is outside
    (``constant``) and the result is ``cval``.
    """
    if mode == "constant":
        if b < 0 or a > n - 1:
            return None
        return max(a, 0.0), min(b, float(n - 1))
    if mode in ("nearest", "grid-constant"):
        reach = pad + order + 3.0  # fold_coordinates keeps points within reach + 1
        return min(max(a, -reach), n - 1 + reach), max(min(b, n - 1 + reach), -reach)
    if n <= 1:
        return 0.0, 0.0
    if 0 <= a and b <= n - 1:
        return a, b  # nothing to fold (the common case: interior chunks)
    period = _FOLD_PERIOD[mode](n)
    if b - a >= 2 * period:
        a, b = -2.0 * period, 2.0 * period  # every piece of the fold appears in here
    points = [a, b]
    tiny = 1e-9 * max(1.0, abs(a), abs(b))
    for r in (0, n - 1, n):
        for k in range(int(np.ceil((a - r) / period)), int(np.floor((b - r) / period)) + 1):
            s = k * period + r
            points.extend([max(a, s - tiny), s, min(b, s + tiny)])
    folded, _ = fold_coordinates(np.array(points), n, mode, pad)
    return float(folded.min()), float(folded.max())


def tap_range(a: float, b: float, order: int) -> tuple[int, int]:
    """First and last spline tap (integer sample index) used for coordinates in ``[a, b]``."""
    half = order // 2
    if order % 2:
        return math.floor(a) - half, math.floor(b) - half + order
    return math.floor(a + 0.5) - half, math.floor(b + 0.5) - half + order


def _reflect_whole(i, length):
    if length <= 1:
        return np.zeros_like(i)
    period = 2 * length - 2
    i = np.mod(i, period)
    return np.where(i >= length, period - i, i)


def _reflect_half(i, length):
    period = 2 * length
    i = np.mod(i, period)
    return np.where(i >= length, period - 1 - i, i)


def tap_source_index(i, n: int, mode: str, pad: int = 0):
    """Where scipy reads a tap at domain index ``i`` (may lie outside the array).

    Returns domain indices in ``[-pad, n-1+pad]``, or :data:`CVAL` where the tap reads
    ``cval`` (``grid-constant``).
    """
    i = np.asarray(i, dtype=np.int64)
    length = n + 2 * pad
    j = i + pad
    if mode in ("constant", "mirror", "wrap"):
        j = _reflect_whole(j, length)
    elif mode == "reflect":
        j = _reflect_half(j, length)
    elif mode == "grid-wrap":
        j = np.mod(j, length)
    elif mode == "nearest":
        j = np.clip(j, 0, length - 1)
    elif mode == "grid-constant":
        return np.where((j < 0) | (j >= length), CVAL, j - pad)
    return j - pad


def filter_source_index(i, n: int, mode: str, pad: int = 0):
    """Input sample read at domain index ``i`` by an infinitely extended prefilter.

    scipy filters the (pre-padded) samples with a boundary condition per mode; filtering
    instead an infinite extension of them reproduces it: whole-sample symmetric for
    ``constant``, ``wrap``, ``mirror``, ``grid-constant``; half-sample symmetric for
    ``reflect`` and ``nearest``; periodic for ``grid-wrap``. The pre-padding itself repeats
    the edge (``nearest``) or is ``cval`` (``grid-constant``).

    Returns input indices in ``[0, n-1]``, or :data:`CVAL` for a padded ``cval`` sample.
    """
    i = np.asarray(i, dtype=np.int64)
    length = n + 2 * pad
    j = i + pad
    if mode in ("constant", "mirror", "wrap", "grid-constant"):
        j = _reflect_whole(j, length)
    elif mode in ("reflect", "nearest"):
        j = _reflect_half(j, length)
    elif mode == "grid-wrap":
        j = np.mod(j, length)
    src = j - pad
    if mode == "nearest":
        return np.clip(src, 0, n - 1)
    if mode == "grid-constant":
        return np.where((src < 0) | (src >= n), CVAL, src)
    return src

"""Compiled (numba) kernels for the commonest case: order-1 interpolation of a chunk whose
taps all lie inside its window, for a matrix map in 2-D or 3-D.

They compute what ``scipy.ndimage.map_coordinates(window, coords - lo, order=1)`` computes,
bit for bit: the coordinates in scipy's order (offset first, then each output axis), the
weights as scipy's spline code forms them (``w0 = 1 - t``, ``w1 = 1 - w0``), the taps summed
in scipy's order with each coefficient multiplied by the weights axis by axis. They never
build a coordinate array. Without numba, :data:`AVAILABLE` is False and the executor keeps
using scipy.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is optional: the executor falls back to scipy.ndimage without it
    import numba
except ImportError:  # pragma: no cover - exercised where numba is missing
    numba = None

__all__ = ["AVAILABLE", "affine_linear"]

AVAILABLE = numba is not None


def _tap(i, n):
    """A tap index past the window's end (weight 0) reads the mirrored sample, as scipy.
    Indices are also kept inside the window: the planner guarantees they are, and numba
    does not check bounds."""
    if i >= n:
        i = 2 * n - 2 - i
    return min(max(i, 0), n - 1)


def _linear_2d(window, linear, offset, start, lo, limit, masked, cval, out):
    n0, n1 = window.shape
    for i in range(out.shape[0]):
        o0 = float(start[0] + i)
        for j in range(out.shape[1]):
            o1 = float(start[1] + j)
            c0 = offset[0] + o0 * linear[0, 0]
            c0 = c0 + o1 * linear[0, 1]
            c1 = offset[1] + o0 * linear[1, 0]
            c1 = c1 + o1 * linear[1, 1]
            if masked and (c0 < 0 or c0 > limit[0] or c1 < 0 or c1 > limit[1]):
                out[i, j] = cval
                continue
            c0 -= lo[0]
            c1 -= lo[1]
            f0 = math.floor(c0)
            f1 = math.floor(c1)
            a0 = 1.0 - (c0 - f0)
            a1 = 1.0 - a0
            b0 = 1.0 - (c1 - f1)
            b1 = 1.0 - b0
            i0 = _tap(int(f0), n0)
            j0 = _tap(int(f1), n1)
            i1 = _tap(int(f0) + 1, n0)
            j1 = _tap(int(f1) + 1, n1)
            t = 0.0
            v = float(window[i0, j0]) * a0
            t += v * b0
            v = float(window[i0, j1]) * a0
            t += v * b1
            v = float(window[i1, j0]) * a1
            t += v * b0
            v = float(window[i1, j1]) * a1
            t += v * b1
            out[i, j] = t


def _linear_3d(window, linear, offset, start, lo, limit, masked, cval, out):
    n0, n1, n2 = window.shape
    for i in range(out.shape[0]):
        o0 = float(start[0] + i)
        for j in range(out.shape[1]):
            o1 = float(start[1] + j)
            for k in range(out.shape[2]):
                o2 = float(start[2] + k)
                c0 = offset[0] + o0 * linear[0, 0]
                c0 = c0 + o1 * linear[0, 1]
                c0 = c0 + o2 * linear[0, 2]
                c1 = offset[1] + o0 * linear[1, 0]
                c1 = c1 + o1 * linear[1, 1]
                c1 = c1 + o2 * linear[1, 2]
                c2 = offset[2] + o0 * linear[2, 0]
                c2 = c2 + o1 * linear[2, 1]
                c2 = c2 + o2 * linear[2, 2]
                if masked and (
                    c0 < 0 or c0 > limit[0] or c1 < 0 or c1 > limit[1] or c2 < 0 or c2 > limit[2]
                ):
                    out[i, j, k] = cval
                    continue
                c0 -= lo[0]
                c1 -= lo[1]
                c2 -= lo[2]
                f0 = math.floor(c0)
                f1 = math.floor(c1)
                f2 = math.floor(c2)
                a0 = 1.0 - (c0 - f0)
                a1 = 1.0 - a0
                b0 = 1.0 - (c1 - f1)
                b1 = 1.0 - b0
                d0 = 1.0 - (c2 - f2)
                d1 = 1.0 - d0
                i0 = _tap(int(f0), n0)
                j0 = _tap(int(f1), n1)
                k0 = _tap(int(f2), n2)
                i1 = _tap(int(f0) + 1, n0)
                j1 = _tap(int(f1) + 1, n1)
                k1 = _tap(int(f2) + 1, n2)
                t = 0.0
                t += float(window[i0, j0, k0]) * a0 * b0 * d0
                t += float(window[i0, j0, k1]) * a0 * b0 * d1
                t += float(window[i0, j1, k0]) * a0 * b1 * d0
                t += float(window[i0, j1, k1]) * a0 * b1 * d1
                t += float(window[i1, j0, k0]) * a1 * b0 * d0
                t += float(window[i1, j0, k1]) * a1 * b0 * d1
                t += float(window[i1, j1, k0]) * a1 * b1 * d0
                t += float(window[i1, j1, k1]) * a1 * b1 * d1
                out[i, j, k] = t


if AVAILABLE:
    _tap = numba.njit(inline="always")(_tap)
    _KERNELS = {
        2: numba.njit(nogil=True, cache=True)(_linear_2d),
        3: numba.njit(nogil=True, cache=True)(_linear_3d),
    }
else:  # pragma: no cover
    _KERNELS = {}


def affine_linear(window, linear, offset, box, lo, dtype, outside=None, cval=0.0):
    """Order-1 interpolation of the output ``box`` from ``window`` (domain index ``lo`` at
    its origin) through ``c = linear @ o + offset``; None when no compiled kernel fits.

    Parameters
    ----------
    window : ndarray
        Holds every tap the points read (taps past the window's end have weight 0).
    outside : sequence of int, optional
        The input's shape: points outside ``[0, n-1]`` on any axis get ``cval``
        (scipy's ``constant`` mode).

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi
    >>> w = np.random.default_rng(0).random((6, 7))
    >>> m = np.array([[0.9, 0.1], [-0.2, 1.0]]); off = np.array([0.5, 1.0])
    >>> out = affine_linear(w, m, off, ((0, 4), (0, 5)), (0, 0), np.float64)
    >>> out is None or bool((out == ndi.affine_transform(w, m, off, (4, 5), order=1)).all())
    True
    """
    kernel = _KERNELS.get(window.ndim)
    if kernel is None or np.dtype(dtype).kind != "f":
        return None
    shape = tuple(e - s for s, e in box)
    out = np.empty(shape, dtype=dtype)
    limit = np.zeros(window.ndim) if outside is None else np.asarray(outside, float) - 1
    kernel(
        np.ascontiguousarray(window),
        np.ascontiguousarray(linear, dtype=np.float64),
        np.ascontiguousarray(offset, dtype=np.float64),
        np.array([s for s, _ in box], dtype=np.int64),
        np.array(lo, dtype=np.float64),
        limit,
        outside is not None,
        float(cval),
        out,
    )
    return out

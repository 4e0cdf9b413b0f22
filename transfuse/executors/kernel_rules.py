"""What a point's coordinate does at an input axis's boundary, in scipy.ndimage's
operations: one source for the compiled CPU kernel (:mod:`.kernels_interp`, numba) and
the GPU kernel (:mod:`.gpu_kernels`, numba.cuda), which compile these plain functions
each their own way (inlined CPU functions; device functions).

* :func:`fold` — scipy's ``map_coordinate`` for the folding modes;
* :func:`rule` — an axis's whole boundary rule: cval, the far ``nearest`` /
  ``grid-constant`` shift back by whole samples, the fold, the first tap;
* :func:`pick` — the grid index of an output point along one grid axis;
* :func:`tap_source` — the sample a tap at an integer index reads (the scalar form of
  :func:`transfuse.planner.boundary.tap_source_index`, for the compiled per-chunk tables
  of :mod:`.kernel_prep`).

Plain Python with no array arguments and no imports beyond :mod:`math`, so that both
compilers accept it. ``rule`` calls ``fold`` through the name ``fold`` of the module that
compiles it: :func:`bind` makes that copy.

numba's disk cache keys a compiled kernel on its own source file only: after editing this
file in a development checkout, touch the kernel modules (``kernels_interp.py``,
``kernels_chain.py``) or clear their ``__pycache__``, or they keep the old rule. (An
installed upgrade rewrites every file, so users never meet this.)
"""

from __future__ import annotations

import math
import types

__all__ = [
    "FORM_COORDS",
    "FORM_MATRIX",
    "FORM_SEPARABLE",
    "MODE_CODES",
    "TAP_CVAL",
    "TAP_MISSING",
    "bind",
    "fold",
    "pick",
    "rule",
    "tap_source",
]

#: Mode numbers inside the kernel (canonical names; ``grid-mirror`` is ``reflect``).
MODE_CODES = {
    "constant": 0,
    "nearest": 1,
    "mirror": 2,
    "reflect": 3,
    "wrap": 4,
    "grid-wrap": 5,
    "grid-constant": 6,
}

#: Table entries that are not offsets.
TAP_CVAL = -1
TAP_MISSING = -2

#: Coordinate forms.
FORM_MATRIX, FORM_SEPARABLE, FORM_COORDS = 0, 1, 2

#: :data:`transfuse.planner.boundary.CVAL`: a tap that reads cval.
TAP_SOURCE_CVAL = -(2**63)

BIG = 2.0**62  # beyond this scipy's integer casts overflow (undefined behaviour in C)
EXACT = 2.0**52  # from here on every float64 is an integer


def fold(c, n, mode):
    """scipy's ``map_coordinate`` for the folding modes (``c`` outside ``[0, n-1]``)."""
    if n <= 1:
        return 0.0
    if c < 0:
        if mode == 2:  # mirror
            s2 = 2 * n - 2
            c = float(s2 * int(-c / s2)) + c
            return c + s2 if c <= 1 - n else -c
        if mode == 3:  # reflect
            s2 = 2 * n
            if c < -s2:
                c = float(s2 * int(-c / s2)) + c
            if c < -n:
                return c + s2
            return (1e-15 if c > -1e-15 else -c) - 1
        if mode == 4:  # wrap
            sz = n - 1
            return c + float(sz * (int(-c / sz) + 1))
        # grid-wrap
        return c + float(n * (int((-1 - c) / n) + 1))
    if mode == 2:
        s2 = 2 * n - 2
        c -= float(s2 * int(c / s2))
        return s2 - c if c >= n else c
    if mode == 3:
        s2 = 2 * n
        c -= float(s2 * int(c / s2))
        return s2 - c - 1 if c >= n else c
    if mode == 4:
        sz = n - 1
        return c - float(sz * int(c / sz))
    return c - float(n * int(c / n))


def rule(cc, n, kind, mode, order, padf, reach):
    """The boundary rule of one axis at coordinate ``cc``: ``(code, cc, start)`` with code
    0 (interpolate at ``cc`` from tap index ``start``), 2 (the point is cval) or 3 (hand
    the chunk back). No array arguments: the kernel inlines it without reference counts."""
    if kind == 0:  # an added axis, or one the pass works slice by slice along
        if not abs(cc) < BIG:
            return 3, cc, 0
        return 0, cc, int(math.floor(cc + 0.5))
    if mode == 0:  # constant
        if cc < 0 or cc > n - 1 or cc != cc:
            return 2, cc, 0
    elif mode == 1 or mode == 6:  # nearest, grid-constant
        # every tap of a point this far out reads the edge (or cval): move it back by
        # whole samples, keeping its weights
        if cc != cc:
            return 3, cc, 0
        if cc > n - 1 + reach:
            if cc < EXACT:
                cc -= math.floor(cc - (n - 1 + reach))
            else:  # an integer: no fraction to keep
                cc = n - 1 + reach
        elif cc < -reach:
            if cc > -EXACT:
                cc += math.floor(-reach - cc)
            else:
                cc = -reach
        cc = cc + padf
    else:
        if cc != cc:
            return 2, cc, 0
        if not abs(cc) < BIG:
            return 3, cc, 0
        if cc < 0 or cc > n - 1:
            cc = fold(cc, n, mode)
        if not cc > -1.0:
            return 2, cc, 0
    if order & 1:
        return 0, cc, int(math.floor(cc)) - order // 2
    return 0, cc, int(math.floor(cc + 0.5)) - order // 2


def pick(src, start, step, o0, o1, o2):
    """Grid index along one grid axis: ``start + step * o[src]`` (``src < 0``: start)."""
    if src == 0:
        return float(start + step * o0)
    if src == 1:
        return float(start + step * o1)
    if src == 2:
        return float(start + step * o2)
    return float(start)


def tap_source(i, n, mode, pad):
    """The domain index the tap at integer domain index ``i`` reads on an axis of ``n``
    samples pre-padded by ``pad`` per side (``mode`` a :data:`MODE_CODES` number), or
    :data:`TAP_SOURCE_CVAL` where it reads cval: what
    :func:`transfuse.planner.boundary.tap_source_index` computes for one index."""
    length = n + 2 * pad
    j = i + pad
    if mode == 0 or mode == 2 or mode == 4:  # constant, mirror, wrap: whole-sample
        if length <= 1:
            j = 0
        else:
            period = 2 * length - 2
            j = j % period
            if j >= length:
                j = period - j
    elif mode == 3:  # reflect: half-sample
        period = 2 * length
        j = j % period
        if j >= length:
            j = period - 1 - j
    elif mode == 5:  # grid-wrap
        j = j % length
    elif mode == 1:  # nearest
        j = min(max(j, 0), length - 1)
    elif j < 0 or j >= length:  # grid-constant
        return TAP_SOURCE_CVAL
    return j - pad


def bind(func, **names):
    """A copy of ``func`` whose global ``names`` are the given objects (its other globals
    this module's): how each kernel module points :func:`rule` at its own compiled
    :func:`fold`."""
    scope = dict(globals())
    scope.update(names)
    copy = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__)
    copy.__doc__ = func.__doc__
    return copy

"""numba.cuda kernels of the ``"gpu"`` backend; the same source runs on a device and in
numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``).

* :data:`INTERPOLATE` — one thread per output point: its coordinates (a matrix stage,
  scipy's separable zoom/shift arithmetic, either read through a lazy view of the grid,
  or a row of a coordinate array), the mode's coordinate rule, spline weights (orders
  0-5) and the sum over taps. It follows the CPU kernel's design
  (:mod:`transfuse.executors.kernels_interp`): scipy's ``NI_GeometricTransform``
  operations in scipy's order, every problem seen as 3-D, and where a tap reads given by
  a per-axis table (mode rule and chunk layout folded in by the caller), so the kernel
  knows nothing of chunks. A point it cannot handle sets ``status[0]`` and the caller
  uses the reference path for the chunk.
* :data:`PREFILTER` — one thread per line of a B-spline prefilter along one axis: the gain,
  then per pole a causal and an anti-causal recursive pass started with scipy's
  initialisation (whole-sample mirror, half-sample reflect or periodic). The running
  value is kept in float64 whatever the storage type, so float32 coefficients differ from
  scipy's float64 ones by their storage rounding only.

Nothing here imports numba.cuda until :func:`load` is called (the executor does, when it
is created): without numba-cuda, transfuse imports as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import threading

import numpy as np

from . import kernel_rules as rules
from .kernel_rules import (  # the kernel's codes, re-exported for the executor
    FORM_COORDS,
    FORM_MATRIX,
    FORM_SEPARABLE,
    MODE_CODES,
    TAP_CVAL,
    TAP_MISSING,
)

cuda = None  # numba.cuda, imported by :func:`load` (it reads NUMBA_ENABLE_CUDASIM once)

__all__ = [
    "FILTER_MIRROR",
    "FILTER_REFLECT",
    "FILTER_REFLECT_ALIASED",
    "FILTER_WRAP",
    "FORM_COORDS",
    "FORM_MATRIX",
    "FORM_SEPARABLE",
    "INTERPOLATE",
    "MODE_CODES",
    "PREFILTER",
    "TAP_CVAL",
    "TAP_MISSING",
    "available",
    "load",
]

# the boundary rule's functions, shared with the CPU kernel; :func:`load` replaces them
# by device functions
_fold, _rule, _pick = rules.fold, rules.rule, rules.pick

#: Prefilter initialisations (scipy's ``apply_filter``).
FILTER_MIRROR, FILTER_REFLECT, FILTER_WRAP, FILTER_REFLECT_ALIASED = 0, 1, 2, 3


def _weights(x, order, w, h):
    """scipy's ``get_spline_interpolation_weights`` into row ``h`` of ``w``."""
    if order & 1:
        x -= math.floor(x)
    else:
        x -= math.floor(x + 0.5)
    y = x
    z = 1.0 - x
    if order == 1:
        w[h, 0] = 1.0 - x
    elif order == 2:
        w[h, 1] = 0.75 - x * x
        y = 0.5 - x
        w[h, 0] = 0.5 * y * y
    elif order == 3:
        w[h, 1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0
        w[h, 2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0
        w[h, 0] = z * z * z / 6.0
    elif order == 4:
        t = x * x
        w[h, 2] = t * (t * 0.25 - 0.625) + 115.0 / 192.0
        y = 1.0 + x
        w[h, 1] = y * (y * (y * (5.0 - y) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0
        w[h, 3] = z * (z * (z * (5.0 - z) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0
        y = 0.5 - x
        t = y * y
        w[h, 0] = t * t / 24.0
    elif order == 5:
        t = y * y
        w[h, 2] = t * (t * (0.25 - y / 12.0) - 0.5) + 0.55
        t = z * z
        w[h, 3] = t * (t * (0.25 - z / 12.0) - 0.5) + 0.55
        y += 1.0
        w[h, 1] = y * (y * (y * (y * (y / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425
        z += 1.0
        w[h, 4] = z * (z * (z * (z * (z / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425
        y = 1.0 - x
        t = y * y
        w[h, 0] = y * t * t / 120.0
    last = 1.0
    for i in range(order):
        last -= w[h, i]
    w[h, order] = last


def _mul(a, b):
    """``a * b``, rounded on its own: never fused with an addition (scipy's C code does
    not fuse, and a fused multiply-add can flip an order-0 tie or a ``constant`` edge)."""
    return a * b


def _add(a, b):
    """``a + b``, rounded on its own (see :func:`_mul`)."""
    return a + b


def _interpolate(
    buf,
    tables,
    tlo,
    tlen,
    shape,
    interp,
    ip,
    cval,
    lin,
    off,
    opk,
    opv,
    grid,
    coords,
    ostart,
    out,
    status,
):
    """Fill ``out`` (3-D), one thread per point (grid-stride loop).

    ``ip`` = (mode, order, form, pad, number of separable operations); per input axis
    ``h``: ``tables[h, i]`` the buffer offset of tap index ``tlo[h] + i`` (pre-padded
    frame), ``shape[h]`` its length, ``interp[h]`` 0 for an axis read at the rounded
    coordinate with weight 1. ``grid`` rows: source output axis, start, step of each grid
    axis (a lazy view), then the rows of ``coords`` each input axis reads (form 2, -1:
    none).
    """
    mode, order, form, pad, nops = ip[0], ip[1], ip[2], ip[3], ip[4]
    padf = float(pad)
    reach = pad + order + 2.0
    s0, s1, s2 = out.shape
    total = s0 * s1 * s2
    w = cuda.local.array((3, 6), dtype=np.float64)
    pos = cuda.local.array((3, 6), dtype=np.int64)
    m = cuda.local.array(3, dtype=np.int64)
    c = cuda.local.array(3, dtype=np.float64)
    first = cuda.local.array(3, dtype=np.int64)
    for h in range(3):
        m[h] = 1 if interp[h] == 0 else order + 1
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for flat in range(start, total, stride):
        i = flat // (s1 * s2)
        j = (flat // s2) % s1
        k = flat % s2
        o0 = ostart[0] + i
        o1 = ostart[1] + j
        o2 = ostart[2] + k
        # -- coordinates, in scipy's operations
        if form == 2:
            for h in range(3):
                r = grid[3, h]
                c[h] = coords[r, i, j, k] if r >= 0 else 0.0
        else:
            g0 = _pick(grid[0, 0], grid[1, 0], grid[2, 0], o0, o1, o2)
            g1 = _pick(grid[0, 1], grid[1, 1], grid[2, 1], o0, o1, o2)
            g2 = _pick(grid[0, 2], grid[1, 2], grid[2, 2], o0, o1, o2)
            if form == 0:
                for h in range(3):
                    t = _add(off[h], _mul(g0, lin[h, 0]))
                    t = _add(t, _mul(g1, lin[h, 1]))
                    c[h] = _add(t, _mul(g2, lin[h, 2]))
            else:
                c[0], c[1], c[2] = g0, g1, g2
                for q in range(nops):
                    for h in range(3):
                        if opk[q] == 0:
                            c[h] = _add(c[h], opv[q, h])
                        else:
                            c[h] = _mul(c[h], opv[q, h])
        # -- boundary rule per axis
        code = 0
        for h in range(3):
            q, cc, f = _rule(c[h], shape[h], interp[h], mode, order, padf, reach)
            if q != 0:
                code = q
                break
            c[h] = cc
            first[h] = f - tlo[h]
        if code == 2:
            out[i, j, k] = cval
            continue
        bad = code == 3
        for h in range(3):
            if first[h] < 0 or first[h] > tlen[h] - m[h]:
                bad = True
        if bad:
            status[0] = 1
            continue
        # -- taps and weights
        anycval = False
        missing = False
        for h in range(3):
            for a in range(m[h]):
                entry = tables[h, first[h] + a]
                anycval |= entry < 0
                missing |= entry == TAP_MISSING
                pos[h, a] = entry
            if m[h] > 1 and order > 0:
                _weights(c[h], order, w, h)
            else:
                w[h, 0] = 1.0
        if missing:
            status[0] = 1
            continue
        # -- the sum over taps, in scipy's order
        t = 0.0
        for a in range(m[0]):
            wa = w[0, a]
            for b in range(m[1]):
                wb = w[1, b]
                for d in range(m[2]):
                    if anycval and (pos[0, a] < 0 or pos[1, b] < 0 or pos[2, d] < 0):
                        sample = cval
                    else:
                        sample = float(buf[pos[0, a] + pos[1, b] + pos[2, d]])
                    t = _add(t, _mul(_mul(_mul(sample, wa), wb), w[2, d]))
        out[i, j, k] = t


# -- prefilter ---------------------------------------------------------------------------------


def _causal_init(c, base, step, n, z, init):
    """The first coefficient of the causal pass (scipy's ``_init_causal_*``)."""
    if init == 0:  # whole-sample mirror
        zn1 = z ** (n - 1)
        zi = z
        acc = float(c[base]) + zn1 * float(c[base + (n - 1) * step])
        for i in range(1, n - 1):
            acc += zi * (float(c[base + i * step]) + zn1 * float(c[base + (n - 1 - i) * step]))
            zi *= z
        return acc / (1 - zn1 * zn1)
    if init == 1 or init == 3:  # half-sample reflect (3: as scipy < 1.18 computes it)
        zn = z**n
        zi = z
        c0 = float(c[base])
        acc = c0 + zn * float(c[base + (n - 1) * step])
        for i in range(1, n):
            # scipy < 1.18 sums into c[0] in place: its last term reads the partial sum
            far = acc if (init == 3 and i == n - 1) else float(c[base + (n - 1 - i) * step])
            acc += zi * (float(c[base + i * step]) + zn * far)
            zi *= z
        acc *= z / (1 - zn * zn)
        return acc + c0
    zi = z  # periodic
    acc = float(c[base])
    for i in range(1, n):
        acc += zi * float(c[base + (n - i) * step])
        zi *= z
    return acc / (1 - zi)


def _anticausal_init(c, base, step, n, z, init):
    """The last coefficient of the anti-causal pass (scipy's ``_init_anticausal_*``)."""
    last = float(c[base + (n - 1) * step])
    if init == 0:
        return (z * float(c[base + (n - 2) * step]) + last) * z / (z * z - 1)
    if init == 1 or init == 3:
        return last * z / (z - 1)
    zi = z
    acc = last
    for i in range(n - 1):
        acc += zi * float(c[base + i * step])
        zi *= z
    return acc * z / (zi - 1)


def _prefilter(c, n, after, nlines, poles, npoles, gain, init):
    """Filter ``nlines`` lines of ``n`` samples in place; line ``L`` starts at
    ``(L // after) * n * after + L % after`` with stride ``after`` (a C-ordered array seen
    as ``(before, n, after)``)."""
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for line in range(start, nlines, stride):
        base = (line // after) * n * after + line % after
        for i in range(n):
            c[base + i * after] = float(c[base + i * after]) * gain
        for p in range(npoles):
            z = poles[p]
            prev = _causal_init(c, base, after, n, z, init)
            c[base] = prev
            for i in range(1, n):
                prev = float(c[base + i * after]) + z * prev
                c[base + i * after] = prev
            prev = _anticausal_init(c, base, after, n, z, init)
            c[base + (n - 1) * after] = prev
            for i in range(n - 2, -1, -1):
                prev = z * (prev - float(c[base + i * after]))
                c[base + i * after] = prev


INTERPOLATE = PREFILTER = None
_LOAD_LOCK = threading.Lock()


def available() -> bool:
    """Whether numba.cuda can be imported (the ``gpu`` extra: numba-cuda)."""
    try:
        return importlib.util.find_spec("numba.cuda") is not None
    except ImportError:  # pragma: no cover - numba itself missing
        return False


def _rounded_ops():
    """Multiply and add that NVVM never contracts into a fused multiply-add (it does by
    default): libdevice's explicitly rounded ``__nv_dmul_rn`` / ``__nv_dadd_rn``."""
    libdevice = importlib.import_module("numba.cuda.libdevice")

    def mul(a, b):
        return libdevice.dmul_rn(a, b)

    def add(a, b):
        return libdevice.dadd_rn(a, b)

    return mul, add


def load():
    """Import numba.cuda and compile-wrap the kernels (once); returns ``(INTERPOLATE,
    PREFILTER)``. Deferred so that importing transfuse never imports numba.cuda, whose
    simulator switch (``NUMBA_ENABLE_CUDASIM``) is read when it is first imported."""
    global cuda, INTERPOLATE, PREFILTER, _fold, _weights, _rule, _pick, _mul, _add
    global _causal_init, _anticausal_init
    with _LOAD_LOCK:
        if INTERPOLATE is None:
            cuda = importlib.import_module("numba.cuda")
            device = cuda.jit(device=True)
            if not cuda.jit.__module__.startswith("numba.cuda.simulator"):
                _mul, _add = _rounded_ops()
            _mul, _add = device(_mul), device(_add)
            _fold, _weights, _pick = map(device, (rules.fold, _weights, rules.pick))
            _rule = device(rules.bind(rules.rule, fold=_fold))
            _causal_init, _anticausal_init = map(device, (_causal_init, _anticausal_init))
            # cached on disk: a device compiles each specialisation once, not per process
            PREFILTER = cuda.jit(cache=True)(_prefilter)
            INTERPOLATE = cuda.jit(cache=True)(_interpolate)
    return INTERPOLATE, PREFILTER

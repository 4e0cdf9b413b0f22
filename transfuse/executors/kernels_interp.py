"""One compiled (numba) kernel that computes each output point's coordinates and
interpolates it in the same loop: orders 0-5, all 8 modes, 1-D to 3-D, every chunk.

It does what scipy.ndimage's ``NI_GeometricTransform`` does, in the same floating-point
operations, so orders 0 and 1 are bit for bit scipy's (and the other orders equal it up
to the chunked prefilter's tolerance):

* **coordinates** from the pass's first stage — a matrix (``offset`` first, then each
  grid axis left to right), scipy's separable zoom/shift arithmetic, either read through
  a lazy view of the grid — or read per point from a coordinate array;
* **the mode's coordinate rule** in the global frame (``map_coordinate``: the folds of
  ``mirror``, ``reflect``, ``wrap``, ``grid-wrap``; ``cval`` outside ``[0, n-1]`` for
  ``constant``), after the pre-padding shift (``+12`` for prefiltered ``nearest`` and
  ``grid-constant``); far-out ``nearest``/``grid-constant`` points move back by whole
  samples as the planner's bounds assume (:func:`~transfuse.planner.boundary.fold_coordinates`);
* **weights** as ``get_spline_interpolation_weights`` forms them, taps summed in scipy's
  order, each coefficient multiplied by the weights axis by axis.

Where a tap reads is not the kernel's business: per axis a small table maps each tap
index the chunk can use to the element offset of its sample in the buffer (the mode's
tap rule, :func:`~transfuse.planner.boundary.tap_source_index`, and the chunk layout are
folded into it by :mod:`.kernel_plan`), or marks it ``cval`` (``grid-constant``) or
missing. A point that needs a missing tap, or a coordinate scipy's C code could not
handle either (beyond 2**62, where its integer casts overflow), stops the kernel: the
caller then uses the reference path for that chunk. Every array is seen as 3-D (a 1-D
or 2-D problem gets leading axes of one sample and weight 1.0, which changes no
floating-point result), so one compiled function serves every rank. It releases the GIL.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile

import numpy as np

from . import kernel_rules as rules
from . import numba_loader
from .kernel_rules import (  # the kernel's codes, re-exported for its callers
    FORM_COORDS,
    FORM_MATRIX,
    FORM_SEPARABLE,
    MODE_CODES,
    TAP_CVAL,
    TAP_MISSING,
)

__all__ = [
    "AVAILABLE",
    "FORM_COORDS",
    "FORM_MATRIX",
    "FORM_SEPARABLE",
    "MODE_CODES",
    "TAP_CVAL",
    "TAP_MISSING",
    "flat_buffer",
    "interpolate",
    "warm_up",
]

#: Truthy where numba imports (the first truth test imports it; where it cannot, the
#: "cpu" backend is the reference backend): :mod:`.numba_loader`.
AVAILABLE = numba_loader.AVAILABLE


def _weights(x, order):
    """scipy's ``get_spline_interpolation_weights`` (same operations, same order), as a
    6-tuple (unused entries 0)."""
    if order & 1:
        x -= math.floor(x)
    else:
        x -= math.floor(x + 0.5)
    y = x
    z = 1.0 - x
    w0 = w1 = w2 = w3 = w4 = w5 = 0.0
    if order == 1:
        w0 = 1.0 - x
        w1 = 1.0 - w0
    elif order == 2:
        w1 = 0.75 - x * x
        y = 0.5 - x
        w0 = 0.5 * y * y
        w2 = 1.0 - w0 - w1
    elif order == 3:
        w1 = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0
        w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0
        w0 = z * z * z / 6.0
        w3 = 1.0 - w0 - w1 - w2
    elif order == 4:
        t = x * x
        w2 = t * (t * 0.25 - 0.625) + 115.0 / 192.0
        y = 1.0 + x
        w1 = y * (y * (y * (5.0 - y) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0
        w3 = z * (z * (z * (5.0 - z) / 6.0 - 1.25) + 5.0 / 24.0) + 55.0 / 96.0
        y = 0.5 - x
        t = y * y
        w0 = t * t / 24.0
        w4 = 1.0 - w0 - w1 - w2 - w3
    elif order == 5:
        t = y * y
        w2 = t * (t * (0.25 - y / 12.0) - 0.5) + 0.55
        t = z * z
        w3 = t * (t * (0.25 - z / 12.0) - 0.5) + 0.55
        y += 1.0
        w1 = y * (y * (y * (y * (y / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425
        z += 1.0
        w4 = z * (z * (z * (z * (z / 24.0 - 0.375) + 1.25) - 1.75) + 0.625) + 0.425
        y = 1.0 - x
        t = y * y
        w0 = y * t * t / 120.0
        w5 = 1.0 - w0 - w1 - w2 - w3 - w4
    return w0, w1, w2, w3, w4, w5


def _at(buf, p):
    """``float(buf[p])`` for an offset known to be >= 0, read through an unsigned index:
    numba then drops its negative-index wraparound (4 instructions per tap read)."""
    return float(buf[np.uint64(p)])


def _trilinear(buf, p00, p01, p10, p11, q0, q1, c0, c1, c2):
    """scipy's order-1 sum over 8 taps ``p_ab + q_d`` (the offsets of the first two axes'
    taps summed, then the last axis's), weights from the coordinates, in scipy's order."""
    wa0 = 1.0 - (c0 - math.floor(c0))
    wa1 = 1.0 - wa0
    wb0 = 1.0 - (c1 - math.floor(c1))
    wb1 = 1.0 - wb0
    wc0 = 1.0 - (c2 - math.floor(c2))
    wc1 = 1.0 - wc0
    t = 0.0
    t += _at(buf, p00 + q0) * wa0 * wb0 * wc0
    t += _at(buf, p00 + q1) * wa0 * wb0 * wc1
    t += _at(buf, p01 + q0) * wa0 * wb1 * wc0
    t += _at(buf, p01 + q1) * wa0 * wb1 * wc1
    t += _at(buf, p10 + q0) * wa1 * wb0 * wc0
    t += _at(buf, p10 + q1) * wa1 * wb0 * wc1
    t += _at(buf, p11 + q0) * wa1 * wb1 * wc0
    t += _at(buf, p11 + q1) * wa1 * wb1 * wc1
    return t


def _tricubic(buf, p, st0, st1, st2, c0, c1, c2):
    """The order-3 sum over the 4 x 4 x 4 taps from offset ``p`` by the strides, in the
    operations of the kernel's cubic branch (the taps of the last axis weighted and summed
    first, then the middle axis, then the first), so the same bits as through the tables."""
    wa = _weights(c0, 3)
    wb = _weights(c1, 3)
    wc0, wc1, wc2, wc3, _, _ = _weights(c2, 3)
    t = 0.0
    for a in range(4):
        pa = p + a * st0
        ta = 0.0
        for b in range(4):
            pb = pa + b * st1
            tb = _at(buf, pb) * wc0
            tb += _at(buf, pb + st2) * wc1
            tb += _at(buf, pb + 2 * st2) * wc2
            tb += _at(buf, pb + 3 * st2) * wc3
            ta += tb * wb[b]
        t += ta * wa[a]
    return t


def _bilinear(buf, p0, p1, q0, q1, c1, c2):
    """:func:`_trilinear` with one tap along the first axis (taps ``p_b + q_d``)."""
    wb0 = 1.0 - (c1 - math.floor(c1))
    wb1 = 1.0 - wb0
    wc0 = 1.0 - (c2 - math.floor(c2))
    wc1 = 1.0 - wc0
    t = 0.0
    t += _at(buf, p0 + q0) * wb0 * wc0
    t += _at(buf, p0 + q1) * wb0 * wc1
    t += _at(buf, p1 + q0) * wb1 * wc0
    t += _at(buf, p1 + q1) * wb1 * wc1
    return t


def _fast_bounds(fast, nm, kinds, padfe, order):
    """Per axis ``(vlo, vhi, clo, chi, shift, half)``: a point is on the fast path when its
    coordinate ``c`` has ``clo <= c <= chi`` and ``vlo <= v <= vhi`` for ``v = c + shift``
    (plus 0.5 when ``half``), two or four comparisons. Then the point needs no fold, no
    shift back and no cval (``0 <= c <= n - 1``), :func:`_rule` is the identity (plus the
    pre-padding shift) and the tap start ``floor(v) - order // 2`` lies in ``flo..fhi``."""
    b = np.empty((3, 6))
    for h in range(3):
        half = kinds[h] == 0 or order % 2 == 0
        shift = padfe if kinds[h] != 0 else 0.0
        lift = 0 if kinds[h] == 0 else order // 2
        vlo = float(fast[h, 0] + lift)
        vhi = np.nextafter(float(fast[h, 1] + lift + 1), -np.inf)
        clo, chi = -np.inf, np.inf
        if kinds[h] != 0:
            clo, chi = 0.0, nm[h]
            if not half and shift == 0.0:  # v is c: one interval
                vlo, vhi = max(vlo, clo), min(vhi, chi)
                clo, chi = -np.inf, np.inf
        b[h, 0], b[h, 1], b[h, 2], b[h, 3] = vlo, vhi, clo, chi
        b[h, 4], b[h, 5] = shift, 0.5 if half else 0.0
    return b


def _axis_point(c, b, q, simple):
    """``(ok, cc, offset)`` of one axis for the fast path: ``b`` is the axis's row of
    :func:`_fast_bounds`, ``q`` its ``(lift, base, stride)``. Scalars only, so that a
    row's loop keeps them in registers (array reads there would be repeated after every
    store to the output, which might alias them)."""
    if simple:  # v is c (an odd order, no shift): one interval
        return c >= b[0] and c <= b[1], c, q[1] + (int(math.floor(c)) - q[0]) * q[2]
    cc = c + b[4]
    v = cc + b[5]
    ok = v >= b[0] and v <= b[1] and c >= b[2] and c <= b[3]
    return ok, cc, q[1] + (int(math.floor(v)) - q[0]) * q[2]


def _axis_consts(bnd, fast, lifts, h):
    """The scalars :func:`_axis_point` takes for axis ``h``."""
    b = (bnd[h, 0], bnd[h, 1], bnd[h, 2], bnd[h, 3], bnd[h, 4], bnd[h, 5])
    return b, (lifts[h], fast[h, 2], fast[h, 3])


def _row_point(k, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple):
    """Point ``k`` of a hoisted matrix-form row (``c = h + g * l``, ``g = gb + gd * k``):
    ``(ok, c0, c1, c2, offset)`` — whether the fast path computes it (no boundary rule,
    taps in the linear runs), its coordinates after the rule (the identity, plus the
    pre-padding shift) and the buffer offset of its first tap."""
    g2 = float(gb + gd * k)
    ok0, c0, p0 = _axis_point(h0 + g2 * l02, b0, q0, simple)
    ok1, c1, p1 = _axis_point(h1 + g2 * l12, b1, q1, simple)
    ok2, c2, p2 = _axis_point(h2 + g2 * l22, b2, q2, simple)
    return ok0 and ok1 and ok2, c0, c1, c2, p0 + p1 + p2


def _axis_span(h, l, gb, gd, b, ka, kb):
    """``(ka, kb)`` narrowed to the real interval of ``k`` where ``c = h + (gb + gd * k) * l``
    meets the fast-path bounds ``b`` of :func:`_fast_bounds`, with a sample of slack each side
    (an estimate: the caller checks the exact test at the ends)."""
    clo = max(b[0] - b[4] - b[5], b[2])
    chi = min(b[1] - b[4] - b[5], b[3])
    s = gd * l
    if s == 0.0:  # c is the same for the whole row
        c = h + float(gb) * l
        if not (c >= clo and c <= chi):
            return 1.0, 0.0
        return ka, kb
    lo = ((clo - h) / l - gb) / gd
    hi = ((chi - h) / l - gb) / gd
    if s < 0.0:
        lo, hi = hi, lo
    lo, hi = lo - 1.0, hi + 1.0  # a sample of slack each side for the estimate's rounding
    if lo > ka:
        ka = lo
    if hi < kb:
        kb = hi
    return ka, kb


def _point_ok(k, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple):
    """Whether :func:`_row_point` puts point ``k`` on the fast path (a call of its own:
    inlined at its few uses only, to keep the kernel's compile time down)."""
    return _row_point(k, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple)[0]


def _fast_span(n, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple):
    """The points ``klo <= k < khi`` of a row of ``n`` that the fast path computes.

    Each coordinate is a monotonic function of ``k`` (float rounding keeps the order of
    ``gb + gd * k``, of its product with ``l`` and of a sum with ``h``), so the points that
    pass :func:`_row_point`'s test form one run: estimated from the bounds (with slack),
    then its ends moved to where the exact test changes. Its loop then needs no
    test per point. (A run the estimate misses entirely would be left to the general path:
    slower, never wrong.)"""
    ka, kb = 0.0, float(n - 1)
    ka, kb = _axis_span(h0, l02, gb, gd, b0, ka, kb)
    ka, kb = _axis_span(h1, l12, gb, gd, b1, ka, kb)
    ka, kb = _axis_span(h2, l22, gb, gd, b2, ka, kb)
    if not ka <= kb:
        return 0, 0
    lo, hi = int(math.ceil(ka)), int(math.floor(kb))
    while lo <= hi and not _point_ok(
        lo, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple
    ):
        lo += 1
    if lo > hi:
        return 0, 0
    while lo > 0 and _point_ok(
        lo - 1, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple
    ):
        lo -= 1
    while not _point_ok(hi, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple):
        hi -= 1
    while hi < n - 1 and _point_ok(
        hi + 1, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple
    ):
        hi += 1
    return lo, hi + 1


#: Points per block of :func:`_trilinear_run`.
BLOCK = 32


def _trilinear_run(buf, orow, klo, khi, h, ls, gb, gd, axes, st, wts, vals):
    """The order-1 fast-path points ``klo <= k < khi`` of a row whose bounds are one
    interval per axis (``simple``), :data:`BLOCK` points at a time: their coordinates,
    weights and first-tap offsets in loops of fixed length (which compile to vector
    instructions), the 8 taps of each gathered, then scipy's products and sum in a loop of
    fixed length — the operations :func:`_trilinear` does point by point, in its order,
    so the same bits. ``axes`` holds ``(lift, base, stride)`` per axis (as floats: the
    offset is computed exactly in float64), ``st`` the strides, ``wts`` (``8 * BLOCK``
    float64) and ``vals`` (``8 * BLOCK`` samples) scratch."""
    nb = BLOCK
    h0, h1, h2 = h[0], h[1], h[2]
    l02, l12, l22 = ls[0], ls[1], ls[2]
    fl0, fb0, fs0 = axes[0, 0], axes[0, 1], axes[0, 2]
    fl1, fb1, fs1 = axes[1, 0], axes[1, 1], axes[1, 2]
    fl2, fb2, fs2 = axes[2, 0], axes[2, 1], axes[2, 2]
    st0, st1, st2 = st[0], st[1], st[2]
    for k0 in range(klo, khi, nb):
        m = min(nb, khi - k0)
        for q in range(nb):  # past m: computed, never read
            g2 = float(gb + gd * (k0 + q))
            c0 = h0 + g2 * l02
            c1 = h1 + g2 * l12
            c2 = h2 + g2 * l22
            f0 = math.floor(c0)
            f1 = math.floor(c1)
            f2 = math.floor(c2)
            wts[q] = 1.0 - (c0 - f0)
            wts[nb + q] = 1.0 - (c1 - f1)
            wts[2 * nb + q] = 1.0 - (c2 - f2)
            p = fb0 + (f0 - fl0) * fs0
            p += fb1 + (f1 - fl1) * fs1
            wts[3 * nb + q] = p + (fb2 + (f2 - fl2) * fs2)
        for q in range(m):
            p00 = int(wts[3 * nb + q])
            p01 = p00 + st1
            p10 = p00 + st0
            p11 = p10 + st1
            vals[q] = buf[np.uint64(p00)]
            vals[nb + q] = buf[np.uint64(p00 + st2)]
            vals[2 * nb + q] = buf[np.uint64(p01)]
            vals[3 * nb + q] = buf[np.uint64(p01 + st2)]
            vals[4 * nb + q] = buf[np.uint64(p10)]
            vals[5 * nb + q] = buf[np.uint64(p10 + st2)]
            vals[6 * nb + q] = buf[np.uint64(p11)]
            vals[7 * nb + q] = buf[np.uint64(p11 + st2)]
        for q in range(nb):
            wa0 = wts[q]
            wa1 = 1.0 - wa0
            wb0 = wts[nb + q]
            wb1 = 1.0 - wb0
            wc0 = wts[2 * nb + q]
            wc1 = 1.0 - wc0
            t = 0.0
            t += float(vals[q]) * wa0 * wb0 * wc0
            t += float(vals[nb + q]) * wa0 * wb0 * wc1
            t += float(vals[2 * nb + q]) * wa0 * wb1 * wc0
            t += float(vals[3 * nb + q]) * wa0 * wb1 * wc1
            t += float(vals[4 * nb + q]) * wa1 * wb0 * wc0
            t += float(vals[5 * nb + q]) * wa1 * wb0 * wc1
            t += float(vals[6 * nb + q]) * wa1 * wb1 * wc0
            t += float(vals[7 * nb + q]) * wa1 * wb1 * wc1
            wts[7 * nb + q] = t
        for q in range(m):
            orow[k0 + q] = wts[7 * nb + q]


def _tricubic_run(buf, orow, klo, khi, h, ls, gb, gd, axes, shifts, st, wts, vals):
    """The order-3 fast-path points ``klo <= k < khi`` of a row, :data:`BLOCK` at a time:
    coordinates (shifted as :func:`_axis_point` shifts them: ``shifts`` holds ``(shift,
    half)`` per axis), the weights of the 3 axes and first-tap offsets in a loop of fixed
    length, the 64 taps of each point gathered, then :func:`_tricubic`'s sums in its order
    in a loop of fixed length — so the same bits. ``wts`` (``16 * BLOCK`` float64) and
    ``vals`` (``64 * BLOCK`` samples) are scratch."""
    nb = BLOCK
    h0, h1, h2 = h[0], h[1], h[2]
    l02, l12, l22 = ls[0], ls[1], ls[2]
    fl0, fb0, fs0 = axes[0, 0], axes[0, 1], axes[0, 2]
    fl1, fb1, fs1 = axes[1, 0], axes[1, 1], axes[1, 2]
    fl2, fb2, fs2 = axes[2, 0], axes[2, 1], axes[2, 2]
    s0, e0 = shifts[0, 0], shifts[0, 1]
    s1, e1 = shifts[1, 0], shifts[1, 1]
    s2, e2 = shifts[2, 0], shifts[2, 1]
    st0, st1, st2 = st[0], st[1], st[2]
    for k0 in range(klo, khi, nb):
        m = min(nb, khi - k0)
        for q in range(nb):  # past m: computed, never read
            g2 = float(gb + gd * (k0 + q))
            c0 = (h0 + g2 * l02) + s0
            c1 = (h1 + g2 * l12) + s1
            c2 = (h2 + g2 * l22) + s2
            p = fb0 + (math.floor(c0 + e0) - fl0) * fs0
            p += fb1 + (math.floor(c1 + e1) - fl1) * fs1
            wts[12 * nb + q] = p + (fb2 + (math.floor(c2 + e2) - fl2) * fs2)
            a0, a1, a2, a3, _, _ = _weights(c0, 3)
            b0, b1, b2, b3, _, _ = _weights(c1, 3)
            d0, d1, d2, d3, _, _ = _weights(c2, 3)
            wts[q], wts[nb + q], wts[2 * nb + q], wts[3 * nb + q] = a0, a1, a2, a3
            wts[4 * nb + q], wts[5 * nb + q], wts[6 * nb + q], wts[7 * nb + q] = b0, b1, b2, b3
            wts[8 * nb + q], wts[9 * nb + q] = d0, d1
            wts[10 * nb + q], wts[11 * nb + q] = d2, d3
        for q in range(m):
            p = int(wts[12 * nb + q])
            for a in range(4):
                for b in range(4):
                    pb = p + a * st0 + b * st1
                    j = (4 * a + b) * 4 * nb + q
                    vals[j] = buf[np.uint64(pb)]
                    vals[j + nb] = buf[np.uint64(pb + st2)]
                    vals[j + 2 * nb] = buf[np.uint64(pb + 2 * st2)]
                    vals[j + 3 * nb] = buf[np.uint64(pb + 3 * st2)]
        for q in range(nb):
            wc0, wc1 = wts[8 * nb + q], wts[9 * nb + q]
            wc2, wc3 = wts[10 * nb + q], wts[11 * nb + q]
            t = 0.0
            for a in range(4):
                ta = 0.0
                for b in range(4):
                    j = (4 * a + b) * 4 * nb + q
                    tb = float(vals[j]) * wc0
                    tb += float(vals[j + nb]) * wc1
                    tb += float(vals[j + 2 * nb]) * wc2
                    tb += float(vals[j + 3 * nb]) * wc3
                    ta += tb * wts[(4 + b) * nb + q]
                t += ta * wts[a * nb + q]
            wts[13 * nb + q] = t
        for q in range(m):
            orow[k0 + q] = wts[13 * nb + q]


def _bilinear_run(buf, orow, klo, khi, h, ls, gb, gd, axes, shifts, st, wts, vals):
    """:func:`_trilinear_run` for the bilinear family (one tap along the first axis: a 2-D
    image, or a plane of a volume), the coordinates shifted as :func:`_axis_point` shifts
    them (``shifts``: ``(shift, half)`` per axis) — :func:`_bilinear`'s operations, so the
    same bits. ``wts`` (``8 * BLOCK`` float64) and ``vals`` (``8 * BLOCK`` samples) are
    scratch."""
    nb = BLOCK
    h0, h1, h2 = h[0], h[1], h[2]
    l02, l12, l22 = ls[0], ls[1], ls[2]
    fl0, fb0, fs0 = axes[0, 0], axes[0, 1], axes[0, 2]
    fl1, fb1, fs1 = axes[1, 0], axes[1, 1], axes[1, 2]
    fl2, fb2, fs2 = axes[2, 0], axes[2, 1], axes[2, 2]
    s0, e0 = shifts[0, 0], shifts[0, 1]
    s1, e1 = shifts[1, 0], shifts[1, 1]
    s2, e2 = shifts[2, 0], shifts[2, 1]
    st1, st2 = st[1], st[2]
    for k0 in range(klo, khi, nb):
        m = min(nb, khi - k0)
        for q in range(nb):  # past m: computed, never read
            g2 = float(gb + gd * (k0 + q))
            c0 = (h0 + g2 * l02) + s0
            c1 = (h1 + g2 * l12) + s1
            c2 = (h2 + g2 * l22) + s2
            wts[q] = 1.0 - (c1 - math.floor(c1))
            wts[nb + q] = 1.0 - (c2 - math.floor(c2))
            p = fb0 + (math.floor(c0 + e0) - fl0) * fs0
            p += fb1 + (math.floor(c1 + e1) - fl1) * fs1
            wts[2 * nb + q] = p + (fb2 + (math.floor(c2 + e2) - fl2) * fs2)
        for q in range(m):
            p0 = int(wts[2 * nb + q])
            p1 = p0 + st1
            vals[q] = buf[np.uint64(p0)]
            vals[nb + q] = buf[np.uint64(p0 + st2)]
            vals[2 * nb + q] = buf[np.uint64(p1)]
            vals[3 * nb + q] = buf[np.uint64(p1 + st2)]
        for q in range(nb):
            wb0 = wts[q]
            wb1 = 1.0 - wb0
            wc0 = wts[nb + q]
            wc1 = 1.0 - wc0
            t = 0.0
            t += float(vals[q]) * wb0 * wc0
            t += float(vals[nb + q]) * wb0 * wc1
            t += float(vals[2 * nb + q]) * wb1 * wc0
            t += float(vals[3 * nb + q]) * wb1 * wc1
            wts[3 * nb + q] = t
        for q in range(m):
            orow[k0 + q] = wts[3 * nb + q]


def _planar_run(buf, orow, klo, khi, h, ls, gb, gd, axes, shifts, st, wts, vals):
    """The fast-path points ``klo <= k < khi`` of a row with 2 taps along the first two
    axes and one along the last (a slice-by-slice pass whose batch axis is the last, as
    ``rotate(axes=(0, 1))`` of a volume: the row walks the batch axis), :data:`BLOCK` at a
    time, coordinates shifted as :func:`_axis_point` shifts them. The general path's
    operations for those taps (the last axis's weight is 1.0, and ``x * 1.0`` is ``x``),
    so the same bits. ``wts`` (``8 * BLOCK`` float64) and ``vals`` (``8 * BLOCK``
    samples) are scratch.

    :func:`_bilinear_run`'s loops for the other pair of axes, kept apart on purpose: one
    function for both, the pair chosen by an argument, ran 11-13% slower on
    ``rotate(axes=(0, 1))`` (measured twice, alternated with this one)."""
    nb = BLOCK
    h0, h1, h2 = h[0], h[1], h[2]
    l02, l12, l22 = ls[0], ls[1], ls[2]
    fl0, fb0, fs0 = axes[0, 0], axes[0, 1], axes[0, 2]
    fl1, fb1, fs1 = axes[1, 0], axes[1, 1], axes[1, 2]
    fl2, fb2, fs2 = axes[2, 0], axes[2, 1], axes[2, 2]
    s0, e0 = shifts[0, 0], shifts[0, 1]
    s1, e1 = shifts[1, 0], shifts[1, 1]
    s2, e2 = shifts[2, 0], shifts[2, 1]
    st0, st1 = st[0], st[1]
    for k0 in range(klo, khi, nb):
        m = min(nb, khi - k0)
        for q in range(nb):  # past m: computed, never read
            g2 = float(gb + gd * (k0 + q))
            c0 = (h0 + g2 * l02) + s0
            c1 = (h1 + g2 * l12) + s1
            c2 = (h2 + g2 * l22) + s2
            wts[q] = 1.0 - (c0 - math.floor(c0))
            wts[nb + q] = 1.0 - (c1 - math.floor(c1))
            p = fb0 + (math.floor(c0 + e0) - fl0) * fs0
            p += fb1 + (math.floor(c1 + e1) - fl1) * fs1
            wts[2 * nb + q] = p + (fb2 + (math.floor(c2 + e2) - fl2) * fs2)
        for q in range(m):
            p00 = int(wts[2 * nb + q])
            p10 = p00 + st0
            vals[q] = buf[np.uint64(p00)]
            vals[nb + q] = buf[np.uint64(p00 + st1)]
            vals[2 * nb + q] = buf[np.uint64(p10)]
            vals[3 * nb + q] = buf[np.uint64(p10 + st1)]
        for q in range(nb):
            wa0 = wts[q]
            wa1 = 1.0 - wa0
            wb0 = wts[nb + q]
            wb1 = 1.0 - wb0
            t = 0.0
            t += float(vals[q]) * wa0 * wb0
            t += float(vals[nb + q]) * wa0 * wb1
            t += float(vals[2 * nb + q]) * wa1 * wb0
            t += float(vals[3 * nb + q]) * wa1 * wb1
            wts[3 * nb + q] = t
        for q in range(m):
            orow[k0 + q] = wts[3 * nb + q]


def _row_fast_body(
    buf, fast, bnd, lifts, fam, h, l02, l12, l22, gb, gd, orow, slow, simple, scratch
):
    """One output row of the hoisted matrix form: every point the fast path can compute
    (one run, :func:`_fast_span`), in the same operations as the general path: ``fam`` 1
    one tap per axis (order 0), 2 trilinear, 3 bilinear with one tap along the first axis
    (order 1), 4 tricubic (order 3, 3-D), 5 two taps along the first two axes and one along
    the last (order 1, a batch axis last); the others' indices go to ``slow``, and their
    number is returned.

    A function of its own, with no call in its loop and no test but the (predictable)
    family, so that the loop keeps everything in registers."""
    h0, h1, h2 = h[0], h[1], h[2]
    b0, q0 = _axis_consts(bnd, fast, lifts, 0)
    b1, q1 = _axis_consts(bnd, fast, lifts, 1)
    b2, q2 = _axis_consts(bnd, fast, lifts, 2)
    st0, st1, st2 = fast[0, 3], fast[1, 3], fast[2, 3]
    n = orow.shape[0]
    klo, khi = _fast_span(n, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple)
    nslow = 0
    for k in range(klo):
        slow[nslow] = k
        nslow += 1
    for k in range(khi, n):
        slow[nslow] = k
        nslow += 1
    if (simple and fam == 2) or fam >= 3:  # blocked: BLOCK points at a time
        wts, vals, axes, ls, st, shifts, wts3, vals3 = scratch
        for a, (qa, ba) in enumerate(((q0, b0), (q1, b1), (q2, b2))):
            axes[a, 0], axes[a, 1], axes[a, 2] = qa[0], qa[1], qa[2]
            shifts[a, 0] = 0.0 if simple else ba[4]
            shifts[a, 1] = 0.0 if simple else ba[5]
        ls[0], ls[1], ls[2] = l02, l12, l22
        st[0], st[1], st[2] = st0, st1, st2
        if fam == 2:  # every axis one interval: no shift
            _trilinear_run(buf, orow, klo, khi, h, ls, gb, gd, axes, st, wts, vals)
        elif fam == 3:
            _bilinear_run(buf, orow, klo, khi, h, ls, gb, gd, axes, shifts, st, wts, vals)
        elif fam == 5:
            _planar_run(buf, orow, klo, khi, h, ls, gb, gd, axes, shifts, st, wts, vals)
        else:
            _tricubic_run(buf, orow, klo, khi, h, ls, gb, gd, axes, shifts, st, wts3, vals3)
        return nslow
    for k in range(klo, khi):
        _, c0, c1, c2, p = _row_point(
            k, b0, q0, b1, q1, b2, q2, h0, h1, h2, l02, l12, l22, gb, gd, simple
        )
        if fam == 1:
            orow[k] = 0.0 + _at(buf, p)
        elif fam == 2:
            p10 = p + st0
            orow[k] = _trilinear(buf, p, p + st1, p10, p10 + st1, 0, st2, c0, c1, c2)
        elif fam == 4:
            orow[k] = _tricubic(buf, p, st0, st1, st2, c0, c1, c2)
        else:
            orow[k] = _bilinear(buf, p, p + st1, 0, st2, c1, c2)
    return nslow


def _simple(bnd):
    """Whether every axis's fast-path test is one interval of ``c`` (see
    :func:`_fast_bounds`)."""
    for h in range(3):
        if bnd[h, 4] != 0.0 or bnd[h, 5] != 0.0 or bnd[h, 2] > -np.inf or bnd[h, 3] < np.inf:
            return False
    return True


def _row_fast(buf, fast, bnd, lifts, fam, h, l02, l12, l22, gb, gd, out, i, j, slow, scratch):
    """:func:`_row_fast_body`, its loop compiled twice: with a constant ``simple`` the
    compiler drops the tests the row does not need."""
    orow = out[i, j]
    if _simple(bnd):
        return _row_fast_body(
            buf, fast, bnd, lifts, fam, h, l02, l12, l22, gb, gd, orow, slow, True, scratch
        )
    return _row_fast_body(
        buf, fast, bnd, lifts, fam, h, l02, l12, l22, gb, gd, orow, slow, False, scratch
    )


def _kernel(
    buf,
    tables,
    tlo,
    tlen,
    shape,
    interp,
    pad,
    mode,
    order,
    cval,
    form,
    lin,
    off,
    opk,
    opv,
    gsrc,
    gstart,
    gstep,
    coords,
    crow,
    ostart,
    fast,
    out,
    status,
):
    """Fill ``out`` (3-D); ``status[0]`` becomes 1 when a point needs the reference path.

    Per input axis ``h`` (3 of them): ``tables[h, i]`` is the buffer offset of tap index
    ``tlo[h] + i`` (pre-padded frame), ``shape[h]`` the axis length (before pre-padding),
    ``interp[h]`` 0 for an axis read at the rounded coordinate with weight 1 (an added
    axis, or an axis the pass works slice by slice along). Coordinates: ``form`` 0 is
    ``off + g @ lin.T`` in scipy's order, 1 the separable operations ``opk``/``opv``
    (0: add, 1: multiply) on ``g``, 2 the rows ``crow`` of ``coords``; the grid index
    ``g[a]`` is ``gstart[a] + gstep[a] * o[gsrc[a]]`` (``gsrc[a] < 0``: fixed at
    ``gstart[a]``), ``o`` the global output index.
    """
    w = np.zeros((3, 6))
    pos = np.zeros((3, 6), dtype=np.int64)
    padf = float(pad)
    reach = pad + order + 2.0
    nops = opk.shape[0]
    l00, l01, l02 = lin[0, 0], lin[0, 1], lin[0, 2]
    l10, l11, l12 = lin[1, 0], lin[1, 1], lin[1, 2]
    l20, l21, l22 = lin[2, 0], lin[2, 1], lin[2, 2]
    f0, f1, f2 = off[0], off[1], off[2]
    a0, a1, a2 = gsrc[0], gsrc[1], gsrc[2]
    b0, b1, b2 = gstart[0], gstart[1], gstart[2]
    d0, d1, d2 = gstep[0], gstep[1], gstep[2]
    r0, r1, r2 = crow[0], crow[1], crow[2]
    n0, n1, n2 = shape[0], shape[1], shape[2]
    k0, k1, k2 = interp[0], interp[1], interp[2]
    m0 = 1 if k0 == 0 else order + 1
    m1 = 1 if k1 == 0 else order + 1
    m2 = 1 if k2 == 0 else order + 1
    x0, x1, x2 = tlo[0], tlo[1], tlo[2]
    e0, e1, e2 = tlen[0] - m0, tlen[1] - m1, tlen[2] - m2
    trilinear = m0 == 2 and m1 == 2 and m2 == 2
    bilinear = m0 == 1 and m1 == 2 and m2 == 2
    single = m0 == 1 and m1 == 1 and m2 == 1
    cubic = m0 == 4 and m1 == 4 and m2 == 4
    padfe = padf if mode == 1 or mode == 6 else 0.0
    nm = np.array([float(n0 - 1), float(n1 - 1), float(n2 - 1)])
    fam = 0
    if fast[0, 0] <= fast[0, 1] and fast[1, 0] <= fast[1, 1] and fast[2, 0] <= fast[2, 1]:
        if single:
            fam = 1
        elif trilinear:
            fam = 2
        elif bilinear:
            fam = 3
        elif cubic and order == 3:
            fam = 4
        elif m0 == 2 and m1 == 2 and m2 == 1:
            fam = 5
    slow = np.empty(out.shape[2], dtype=np.int64)
    # the scratch of the blocked order-1 run (flat: measured faster than 2-D, 12.2
    # against 14.0 ns per point)
    scratch = (
        np.empty(8 * BLOCK),
        np.zeros(8 * BLOCK, dtype=buf.dtype),
        np.empty((3, 3)),
        np.empty(3),
        np.empty(3, dtype=np.int64),
        np.empty((3, 2)),
        np.empty(16 * BLOCK),
        np.zeros(64 * BLOCK, dtype=buf.dtype),
    )
    bnd = _fast_bounds(fast, nm, interp, padfe, order)
    lifts = np.array([0 if interp[h] == 0 else order // 2 for h in range(3)])
    hh = np.empty(3)
    s0, s1, s2 = out.shape
    # scipy adds the terms left to right, so the sum over the first two grid axes is the
    # same for a whole row when they do not walk the last output axis: computed once
    hoist = form == 0 and a0 != 2 and a1 != 2
    h0 = h1 = h2 = 0.0
    for i in range(s0):
        o0 = ostart[0] + i
        for j in range(s1):
            o1 = ostart[1] + j
            if hoist:
                g0 = _pick(a0, b0, d0, o0, o1, 0)
                g1 = _pick(a1, b1, d1, o0, o1, 0)
                h0 = f0 + g0 * l00
                h0 = h0 + g1 * l01
                h1 = f1 + g0 * l10
                h1 = h1 + g1 * l11
                h2 = f2 + g0 * l20
                h2 = h2 + g1 * l21
            nslow = s2
            if hoist and fam:
                if a2 == 2:
                    gb, gd = b2 + d2 * ostart[2], d2
                elif a2 < 0:
                    gb, gd = b2, 0
                else:
                    gb, gd = b2 + d2 * (o0 if a2 == 0 else o1), 0
                hh[0], hh[1], hh[2] = h0, h1, h2
                nslow = _row_fast(
                    buf,
                    fast,
                    bnd,
                    lifts,
                    fam,
                    hh,
                    l02,
                    l12,
                    l22,
                    gb,
                    gd,
                    out,
                    i,
                    j,
                    slow,
                    scratch,
                )
            for q in range(nslow):
                k = slow[q] if hoist and fam else q
                o2 = ostart[2] + k
                # -- coordinates, in scipy's operations
                if hoist:
                    g2 = _pick(a2, b2, d2, o0, o1, o2)
                    c0 = h0 + g2 * l02
                    c1 = h1 + g2 * l12
                    c2 = h2 + g2 * l22
                elif form == 2:
                    c0 = coords[r0, i, j, k] if r0 >= 0 else 0.0
                    c1 = coords[r1, i, j, k] if r1 >= 0 else 0.0
                    c2 = coords[r2, i, j, k] if r2 >= 0 else 0.0
                else:
                    g0 = _pick(a0, b0, d0, o0, o1, o2)
                    g1 = _pick(a1, b1, d1, o0, o1, o2)
                    g2 = _pick(a2, b2, d2, o0, o1, o2)
                    if form == 0:
                        c0 = f0 + g0 * l00
                        c0 = c0 + g1 * l01
                        c0 = c0 + g2 * l02
                        c1 = f1 + g0 * l10
                        c1 = c1 + g1 * l11
                        c1 = c1 + g2 * l12
                        c2 = f2 + g0 * l20
                        c2 = c2 + g1 * l21
                        c2 = c2 + g2 * l22
                    else:
                        c0, c1, c2 = g0, g1, g2
                        for q in range(nops):
                            if opk[q] == 0:
                                c0 = c0 + opv[q, 0]
                                c1 = c1 + opv[q, 1]
                                c2 = c2 + opv[q, 2]
                            else:
                                c0 = c0 * opv[q, 0]
                                c1 = c1 * opv[q, 1]
                                c2 = c2 * opv[q, 2]
                # -- boundary rule per axis
                q0, c0, i0 = _rule(c0, n0, k0, mode, order, padf, reach)
                if q0 == 2:
                    out[i, j, k] = cval
                    continue
                q1, c1, i1 = _rule(c1, n1, k1, mode, order, padf, reach)
                if q1 == 2:
                    out[i, j, k] = cval
                    continue
                q2, c2, i2 = _rule(c2, n2, k2, mode, order, padf, reach)
                if q2 == 2:
                    out[i, j, k] = cval
                    continue
                i0 -= x0
                i1 -= x1
                i2 -= x2
                if q0 | q1 | q2 or i0 < 0 or i1 < 0 or i2 < 0 or i0 > e0 or i1 > e1 or i2 > e2:
                    status[0] = 1
                    return
                # -- fast paths: every tap a sample (no cval), 1 or 2 taps per axis
                if trilinear:
                    p0a, p0b = tables[0, i0], tables[0, i0 + 1]
                    p1a, p1b = tables[1, i1], tables[1, i1 + 1]
                    p2a, p2b = tables[2, i2], tables[2, i2 + 1]
                    if (p0a | p0b | p1a | p1b | p2a | p2b) >= 0:
                        out[i, j, k] = _trilinear(
                            buf, p0a + p1a, p0a + p1b, p0b + p1a, p0b + p1b, p2a, p2b, c0, c1, c2
                        )
                        continue
                elif bilinear:
                    p0a = tables[0, i0]
                    p1a, p1b = tables[1, i1], tables[1, i1 + 1]
                    p2a, p2b = tables[2, i2], tables[2, i2 + 1]
                    if (p0a | p1a | p1b | p2a | p2b) >= 0:
                        out[i, j, k] = _bilinear(buf, p0a + p1a, p0a + p1b, p2a, p2b, c1, c2)
                        continue
                elif cubic:
                    ok = True
                    for a in range(4):
                        v0 = tables[0, i0 + a]
                        v1 = tables[1, i1 + a]
                        v2 = tables[2, i2 + a]
                        ok &= (v0 | v1 | v2) >= 0
                        pos[0, a] = v0
                        pos[1, a] = v1
                        pos[2, a] = v2
                    if ok:
                        wa = _weights(c0, order)
                        wb = _weights(c1, order)
                        wc0, wc1, wc2, wc3, _, _ = _weights(c2, order)
                        u0, u1, u2, u3 = pos[2, 0], pos[2, 1], pos[2, 2], pos[2, 3]
                        # factored sum: within ~1e-16 of scipy's tap-by-tap products
                        # (orders above 1 promise 1e-10, not bits), half the operations
                        t = 0.0
                        for a in range(4):
                            pa = pos[0, a]
                            ta = 0.0
                            for b in range(4):
                                pb = pa + pos[1, b]
                                tb = _at(buf, pb + u0) * wc0
                                tb += _at(buf, pb + u1) * wc1
                                tb += _at(buf, pb + u2) * wc2
                                tb += _at(buf, pb + u3) * wc3
                                ta += tb * wb[b]
                            t += ta * wa[a]
                        out[i, j, k] = t
                        continue
                elif single:
                    p0a, p1a, p2a = tables[0, i0], tables[1, i1], tables[2, i2]
                    if (p0a | p1a | p2a) >= 0:
                        out[i, j, k] = 0.0 + _at(buf, p0a + p1a + p2a)
                        continue
                # -- taps (buffer offsets) and weights
                anycval = False
                for a in range(m0):
                    v = tables[0, i0 + a]
                    anycval |= v < 0
                    pos[0, a] = v
                for a in range(m1):
                    v = tables[1, i1 + a]
                    anycval |= v < 0
                    pos[1, a] = v
                for a in range(m2):
                    v = tables[2, i2 + a]
                    anycval |= v < 0
                    pos[2, a] = v
                if anycval:
                    for h in range(3):
                        for a in range(6):
                            if pos[h, a] == TAP_MISSING and a < (m0, m1, m2)[h]:
                                status[0] = 1
                                return
                if m0 > 1 and order > 0:
                    w[0, 0], w[0, 1], w[0, 2], w[0, 3], w[0, 4], w[0, 5] = _weights(c0, order)
                else:
                    w[0, 0] = 1.0
                if m1 > 1 and order > 0:
                    w[1, 0], w[1, 1], w[1, 2], w[1, 3], w[1, 4], w[1, 5] = _weights(c1, order)
                else:
                    w[1, 0] = 1.0
                if m2 > 1 and order > 0:
                    w[2, 0], w[2, 1], w[2, 2], w[2, 3], w[2, 4], w[2, 5] = _weights(c2, order)
                else:
                    w[2, 0] = 1.0
                # -- the sum over taps, in scipy's order
                t = 0.0
                if not anycval:
                    for a in range(m0):
                        pa = pos[0, a]
                        wa = w[0, a]
                        for b in range(m1):
                            pb = pa + pos[1, b]
                            wb = w[1, b]
                            for d in range(m2):
                                t += float(buf[pb + pos[2, d]]) * wa * wb * w[2, d]
                else:
                    for a in range(m0):
                        wa = w[0, a]
                        for b in range(m1):
                            wb = w[1, b]
                            for d in range(m2):
                                p0, p1, p2 = pos[0, a], pos[1, b], pos[2, d]
                                if p0 < 0 or p1 < 0 or p2 < 0:
                                    v = cval
                                else:
                                    v = _at(buf, p0 + p1 + p2)
                                t += v * wa * wb * w[2, d]
                out[i, j, k] = t


def fallback_cache_dir() -> str:
    """A per-user directory for numba's on-disk cache, used when neither the package's
    ``__pycache__`` nor the user's cache directory can be written (a read-only install
    and no writable home)."""
    try:
        user = str(os.getuid())
    except AttributeError:  # pragma: no cover - Windows
        user = os.environ.get("USERNAME", "user")
    return os.path.join(tempfile.gettempdir(), f"transfuse-numba-cache-{user}")


def _jit(func, **options):
    """``numba.njit(cache=True)``: compiled once per machine, then loaded from disk. numba
    refuses to create a cached function where it finds no writable cache location; then
    the cache goes to :func:`fallback_cache_dir`, or, failing that too, the function is
    compiled in every process (slow first calls, but right)."""
    numba = numba_loader.module()
    try:
        return numba.njit(cache=True, **options)(func)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        pass
    if not numba.config.CACHE_DIR:
        numba.config.CACHE_DIR = fallback_cache_dir()
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # pragma: no cover - no writable temporary directory either
            pass
    return numba.njit(**options)(func)  # pragma: no cover


def no_refcounts() -> dict:
    """numba options for a compiled function called per row that allocates nothing: no
    reference counting (numba's ``_nrt=False``), where this numba has the option.

    numba counts references to every array a function is given or makes (a view
    ``out[i, j]`` included) with atomic increments and decrements; on the per-row calls of
    the kernel they took 36% of an order-1 chunk's time (``perf``: 9.3 against 6.8 ns per
    point without). Such a function must not allocate (numba refuses to compile it if it
    does) and only uses arrays its caller keeps alive."""
    from numba.core.cpu import CPUTargetOptions

    return {"_nrt": False} if hasattr(CPUTargetOptions, "_nrt") else {}


# plain Python until :func:`_jit_helpers` compiles them
_fold, _rule, _pick = rules.fold, rules.rule, rules.pick


@functools.cache
def _jit_helpers() -> None:
    """Compile the helpers the kernels inline, once (at the first kernel's first call)."""
    global _fold, _weights, _rule, _pick, _fast_bounds, _axis_point, _axis_consts, _row_point
    global _simple, _row_fast_body, _row_fast, _trilinear, _bilinear, _axis_span, _fast_span, _at
    global _point_ok, _tricubic, _trilinear_run, _tricubic_run, _bilinear_run, _planar_run
    # the helpers are inlined into the kernel (numba's IR inlining): slower to compile
    # once, ~1.5x faster per point than calls
    bare = no_refcounts()
    _fold = _jit(rules.fold, inline="always")
    _weights = _jit(_weights, inline="always")
    _rule = _jit(rules.bind(rules.rule, fold=_fold), inline="always")
    _pick = _jit(rules.pick, inline="always")
    _fast_bounds = _jit(_fast_bounds, inline="always")
    _axis_point = _jit(_axis_point, inline="always")
    _axis_consts = _jit(_axis_consts, inline="always")
    _row_point = _jit(_row_point, inline="always")
    _axis_span = _jit(_axis_span, inline="always")
    _point_ok = _jit(_point_ok, boundscheck=False)
    _fast_span = _jit(_fast_span, inline="always")
    _simple = _jit(_simple, inline="always")
    _row_fast_body = _jit(_row_fast_body, inline="always")
    _row_fast = _jit(_row_fast, **bare, nogil=True, boundscheck=False)
    _trilinear_run = _jit(_trilinear_run, **bare, boundscheck=False)
    _tricubic_run = _jit(_tricubic_run, **bare, boundscheck=False)
    _bilinear_run = _jit(_bilinear_run, **bare, boundscheck=False)
    _planar_run = _jit(_planar_run, **bare, boundscheck=False)
    _at = _jit(_at, inline="always")
    _trilinear = _jit(_trilinear, inline="always")
    _bilinear = _jit(_bilinear, inline="always")
    _tricubic = _jit(_tricubic, **bare, boundscheck=False)


def _register_kernel():
    _jit_helpers()
    return _jit(_kernel, nogil=True, boundscheck=False)


# numba is imported, and the kernel compiled or loaded from the disk cache, at its first call
_KERNEL = numba_loader.DeferredKernel(_register_kernel)


def flat_buffer(a: np.ndarray):
    """A 1-D writeable, native float32/float64 buffer over ``a``'s samples and the strides of
    ``a`` in elements of it — no copy when ``a`` already is such an array with non-negative
    strides (a view of a chunk included)."""
    if a.dtype not in (np.float32, np.float64) or not a.dtype.isnative:
        # exact: scipy reads every sample as a double (float64 rather than float32 for
        # small integers too: one compiled specialisation fewer)
        a = a.astype(np.float64)
    itemsize = a.itemsize
    strides = a.strides
    ok = a.flags.writeable and all(s >= 0 and s % itemsize == 0 for s in strides)
    if not ok:
        a = np.array(a, order="C")
        strides = a.strides
    st = [s // itemsize for s in strides]
    if a.size == 0:
        return np.zeros(1, dtype=a.dtype), st
    if a.flags.c_contiguous:
        return a.reshape(-1), st
    extent = sum((n - 1) * s for n, s in zip(a.shape, st, strict=True)) + 1
    flat = np.lib.stride_tricks.as_strided(a, shape=(extent,), strides=(itemsize,))
    return flat, st


def linear_runs(tables, starts, strides, interp, order):
    """Per axis ``(flo, fhi, base, stride)`` for the kernel's fast path: the longest run of
    tap indices whose table entries are samples ``base + i * stride``, shortened so that
    every start ``flo..fhi`` has all its taps in the run (``flo > fhi``: none)."""
    fast = np.zeros((3, 4), dtype=np.int64)
    for h, table in enumerate(tables):
        fast[h, 0], fast[h, 1] = 1, 0
        if strides is None:
            continue
        st = int(strides[h])
        taps = 1 if interp[h] == 0 else order + 1
        t = np.asarray(table, dtype=np.int64)
        step = (t[1:] == t[:-1] + st) & (t[1:] >= 0) & (t[:-1] >= 0)
        # runs of consecutive linear steps (a lone sample is a run of one entry)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], step.view(np.int8), [0]))))
        if len(edges):
            first, last = edges[0::2], edges[1::2]  # steps first..last-1: entries first..last
            k = int(np.argmax(last - first))
            a, b = int(first[k]), int(last[k])
        else:
            good = np.flatnonzero(t >= 0)
            if not len(good):
                continue
            a = b = int(good[0])
        if b - a + 1 < taps:
            continue
        fast[h] = starts[h] + a, starts[h] + b - taps + 1, t[a] - (starts[h] + a) * st, st
    return fast


def pack_tables(tables, starts, strides, interp, order):
    """The kernel's ``(tab, tlen, starts, fast)`` from per-axis ``tables`` (what
    :func:`transfuse.executors.kernel_prep.tables` computes in compiled code)."""
    width = max(len(t) for t in tables)
    tab = np.full((3, width), TAP_MISSING, dtype=np.int64)
    for h, t in enumerate(tables):
        tab[h, : len(t)] = t
    tlen = np.array([len(t) for t in tables], dtype=np.int64)
    fast = linear_runs(tables, starts, strides, interp, int(order))
    return tab, tlen, np.asarray(starts, dtype=np.int64), fast


def interpolate(
    buf,
    tables,
    starts,
    shape,
    interp,
    pad,
    mode,
    order,
    cval,
    coords_spec,
    box,
    out,
    strides=None,
    packed=None,
):
    """Run the kernel; True when every point was computed (else use the reference path).

    ``coords_spec`` is ``(form, lin, off, opk, opv, gsrc, gstart, gstep, coords, crow)``
    padded to 3 axes; ``tables``/``starts``/``shape``/``interp`` likewise; ``box`` the
    output box start (3 entries); ``out`` 3-D; ``strides`` the buffer's strides in elements
    per axis (3 entries; None: every point through the tables). ``packed``: the tables
    already packed (:func:`pack_tables`); ``tables``, ``starts`` and ``strides`` are then
    not read.
    """
    if packed is None:
        packed = pack_tables(tables, starts, strides, interp, order)
    tab, tlen, starts, fast = packed
    status = np.zeros(1, dtype=np.int64)
    form, lin, off, opk, opv, gsrc, gstart, gstep, coords, crow = coords_spec
    _KERNEL(
        buf,
        tab,
        starts,
        tlen,
        np.asarray(shape, dtype=np.int64),
        np.asarray(interp, dtype=np.int64),
        int(pad),
        int(mode),
        int(order),
        float(cval),
        int(form),
        lin,
        off,
        opk,
        opv,
        gsrc,
        gstart,
        gstep,
        coords,
        crow,
        np.asarray(box, dtype=np.int64),
        fast,
        out,
        status,
    )
    return status[0] == 0


def warm_up(dtypes=(np.float32, np.float64)) -> float:
    """Compile the kernel (or load it from numba's disk cache) for samples of ``dtypes``
    now rather than at the first chunk; the seconds it took (0.0 without numba).

    ``float32`` samples get their own specialisation (into a float32 result, as a float32
    input's default output), every other dtype (and every order above 1, whose
    coefficients are float64) the ``float64`` one.

    Examples
    --------
    >>> seconds = warm_up([np.float64])
    >>> seconds >= 0.0
    True
    """
    if not AVAILABLE:
        return 0.0
    import time

    t0 = time.perf_counter()
    families = {np.dtype(np.float32 if np.dtype(d) == np.float32 else np.float64) for d in dtypes}
    for dtype in sorted(families, key=str):
        # one point, order 1, read from a 2x2x2 block: the argument types of every real call
        buf = np.zeros(8, dtype=dtype)
        tables = [np.array([0, 4], dtype=np.int64), np.array([0, 2]), np.array([0, 1])]
        spec = (
            FORM_MATRIX,
            np.eye(3),
            np.full(3, 0.5),
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 3)),
            np.arange(3, dtype=np.int64),
            np.zeros(3, dtype=np.int64),
            np.ones(3, dtype=np.int64),
            np.zeros((1, 1, 1, 1)),
            np.full(3, -1, dtype=np.int64),
        )
        shape = np.full(3, 2, dtype=np.int64)
        out = np.empty((1, 1, 1), dtype=dtype)
        interpolate(
            buf,
            tables,
            [0, 0, 0],
            shape,
            np.ones(3, dtype=np.int64),
            0,
            1,
            1,
            0.0,
            spec,
            [0, 0, 0],
            out,
        )
    return time.perf_counter() - t0

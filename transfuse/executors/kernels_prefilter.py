"""The chunked B-spline prefilter, compiled (numba): scipy's ``spline_filter1d`` along one
axis of a filter window, cropped to the samples the next axis (or the coefficient chunk)
keeps.

The arithmetic is scipy's (``ni_splines.c``): the gain ``prod((1 - z) * (1 - 1 / z))``
first, then per pole a causal pass ``c[i] += z * c[i - 1]`` and an anti-causal pass
``c[i] = z * (c[i + 1] - c[i])``, started at the line's ends by the mode's rule:

* ``MIRROR`` (whole-sample symmetric), ``REFLECT`` (half-sample symmetric) and ``WRAP``
  (periodic, scipy's ``grid-wrap``): scipy's initialisations, within ~1e-13 of scipy on
  lines of 32 samples or more (on shorter ones scipy 1.17's half-sample start differs from
  its formula by up to ``|z|**n``). :func:`prefilter_block` still filters axes taken whole
  (one chunk, or short) with scipy's own ``spline_filter1d``, so that a single-chunk array
  gets scipy's coefficients bit for bit;
* ``HALO``: a window that reaches ``depth`` samples beyond what is kept. How the line
  starts then only matters to ``|z|**depth`` (the halo is chosen for the tolerance, see
  :func:`~transfuse.executors.spline.halo_depth`), so the causal pass starts from a zero
  state (no start sum), the first causal pass reads the window (the gain applied as it
  goes) and the last anti-causal pass stops at the first kept sample: per line, one read
  of the window, two passes per pole and one write of the kept samples.

Lines are filtered side by side, the recursion along the line and the lines in the inner,
vectorised loop: :data:`TILE` rows (lines along the last axis) transposed into a buffer,
or up to :data:`COLUMNS` neighbouring columns (lines along an outer axis) read in place.
Windows are C-contiguous, seen as 3-D ``(before, axis, after)``: float32 where the input is
(read as float64 as they are read), else float64; results float64. Two compiled
specialisations (float32 and float64 windows) serve every rank and input dtype. The kernel
releases the GIL.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
from scipy import ndimage

from ..planner.boundary import CVAL
from . import numba_loader
from .kernels_interp import AVAILABLE, _jit
from .spline import PrefilterSpec, filter_indices, padded_cval

__all__ = [
    "AVAILABLE",
    "HALO",
    "MIRROR",
    "REFLECT",
    "WRAP",
    "filter_axis",
    "poles",
    "prefilter_block",
    "warm_up",
]

#: Boundary rules inside the kernel.
MIRROR, REFLECT, WRAP, HALO = 0, 1, 2, 3

#: Lines filtered side by side.
TILE = 16

#: Columns (lines along an outer axis) filtered side by side.
COLUMNS = 128


def poles(order: int) -> np.ndarray:
    """The poles of scipy's B-spline prefilter of ``order`` (2-5), as scipy computes them.

    Examples
    --------
    >>> [round(float(z), 6) for z in poles(3)]
    [-0.267949]
    """
    if order == 2:
        zs = [math.sqrt(8.0) - 3.0]
    elif order == 3:
        zs = [math.sqrt(3.0) - 2.0]
    elif order == 4:
        zs = [
            math.sqrt(664.0 - math.sqrt(438976.0)) + math.sqrt(304.0) - 19.0,
            math.sqrt(664.0 + math.sqrt(438976.0)) - math.sqrt(304.0) - 19.0,
        ]
    elif order == 5:
        zs = [
            math.sqrt(67.5 - math.sqrt(4436.25)) + math.sqrt(26.25) - 6.5,
            math.sqrt(67.5 + math.sqrt(4436.25)) - math.sqrt(26.25) - 6.5,
        ]
    else:
        raise ValueError(f"order={order!r}: the spline prefilter has poles for orders 2-5 only")
    return np.array(zs, dtype=np.float64)


def _filter_tile(buf, n, w, zs, gain, rule):
    """Filter the ``w`` lines of ``buf`` (``(n, TILE)``, one line per column) in place with
    a whole-line rule (``MIRROR``, ``REFLECT``, ``WRAP``), scipy's initialisations."""
    for i in range(n):
        for t in range(w):
            buf[i, t] *= gain
    acc = np.empty(TILE)
    for p in range(zs.size):
        z = zs[p]
        # causal start
        if rule == 0:  # MIRROR: scipy's _init_causal_mirror
            z_n_1 = z ** (n - 1)
            for t in range(w):
                acc[t] = buf[0, t] + z_n_1 * buf[n - 1, t]
            z_i = z
            for i in range(1, n - 1):
                for t in range(w):
                    acc[t] += z_i * (buf[i, t] + z_n_1 * buf[n - 1 - i, t])
                z_i *= z
            for t in range(w):
                buf[0, t] = acc[t] / (1.0 - z_n_1 * z_n_1)
        elif rule == 1:  # REFLECT: scipy's _init_causal_reflect
            z_n = z**n
            for t in range(w):
                acc[t] = buf[0, t] + z_n * buf[n - 1, t]
            z_i = z
            for i in range(1, n):
                for t in range(w):
                    acc[t] += z_i * (buf[i, t] + z_n * buf[n - 1 - i, t])
                z_i *= z
            for t in range(w):
                buf[0, t] = acc[t] * (z / (1.0 - z_n * z_n)) + buf[0, t]
        else:  # WRAP: scipy's _init_causal_wrap
            for t in range(w):
                acc[t] = buf[0, t]
            z_i = z
            for i in range(1, n):
                for t in range(w):
                    acc[t] += z_i * buf[n - i, t]
                z_i *= z
            for t in range(w):
                buf[0, t] = acc[t] / (1.0 - z_i)
        for i in range(1, n):
            for t in range(w):
                buf[i, t] += z * buf[i - 1, t]
        # anti-causal start
        if rule == 1:  # scipy's _init_anticausal_reflect
            for t in range(w):
                buf[n - 1, t] *= z / (z - 1.0)
        elif rule == 2:  # scipy's _init_anticausal_wrap
            for t in range(w):
                acc[t] = buf[n - 1, t]
            z_i = z
            for i in range(n - 1):
                for t in range(w):
                    acc[t] += z_i * buf[i, t]
                z_i *= z
            for t in range(w):
                buf[n - 1, t] = acc[t] * (z / (z_i - 1.0))
        else:  # MIRROR: scipy's _init_anticausal_mirror
            for t in range(w):
                buf[n - 1, t] = (z * buf[n - 2, t] + buf[n - 1, t]) * z / (z * z - 1.0)
        for i in range(n - 2, -1, -1):
            for t in range(w):
                buf[i, t] = z * (buf[i + 1, t] - buf[i, t])


def _halo_lines(buf, n, w, lo, stop, zs):
    """The passes after the first causal one on the ``w`` lines of ``buf``, the last
    anti-causal pass stopping at ``lo`` (the kept samples are ``lo .. stop``).

    Rows are sliced and indexed by the inner loop's variable (here and in the loops that
    read and write the tiles): an index like ``i - 1`` costs numba a negative-index test
    per sample, which keeps the loop from vectorising (measured ~2x slower).
    """
    last = zs.size - 1
    for p in range(zs.size):
        z = zs[p]
        if p > 0:
            for i in range(1, n):
                cur, prv = buf[i, :w], buf[i - 1, :w]
                for t in range(w):
                    cur[t] += z * prv[t]
        # scipy's _init_anticausal_mirror
        cur, prv = buf[n - 1, :w], buf[n - 2, :w]
        for t in range(w):
            cur[t] = (z * prv[t] + cur[t]) * z / (z * z - 1.0)
        end = 0 if p < last else lo
        for i in range(n - 2, end - 1, -1):
            cur, nxt = buf[i, :w], buf[i + 1, :w]
            for t in range(w):
                cur[t] = z * (nxt[t] - cur[t])


def _halo_rows(src, dst, buf, b0, w, lo, zs, gain):
    """The ``HALO`` rule on the rows ``src[b0 + t, :, 0]``, kept samples to ``dst``: the
    causal pass starts from a zero state."""
    n = src.shape[1]
    keep = dst.shape[1]
    z = zs[0]
    for t in range(w):  # transposed into the tile, the gain applied
        line = src[b0 + t, :, 0]
        for i in range(n):
            buf[i, t] = gain * line[i]
    for i in range(1, n):
        cur, prv = buf[i, :w], buf[i - 1, :w]
        for t in range(w):
            cur[t] += z * prv[t]
    _halo_lines(buf, n, w, lo, lo + keep, zs)
    for t in range(w):
        out = dst[b0 + t, :, 0]
        for k in range(keep):
            out[k] = buf[lo + k, t]


def _halo_columns(src, dst, buf, b, a0, w, lo, zs, gain):
    """The ``HALO`` rule on the columns ``src[b, :, a0 + t]``, kept samples to ``dst``: the
    first causal pass reads the source (gain applied as it goes), from a zero state."""
    n = src.shape[1]
    keep = dst.shape[1]
    z = zs[0]
    first, cur = src[b, 0, a0 : a0 + w], buf[0, :w]
    for t in range(w):
        cur[t] = gain * first[t]
    for i in range(1, n):
        row, cur, prv = src[b, i, a0 : a0 + w], buf[i, :w], buf[i - 1, :w]
        for t in range(w):
            cur[t] = gain * row[t] + z * prv[t]
    _halo_lines(buf, n, w, lo, lo + keep, zs)
    for k in range(keep):
        out, kept = dst[b, k, a0 : a0 + w], buf[lo + k, :w]
        for t in range(w):
            out[t] = kept[t]


def _filter_axis(src, dst, lo, zs, rule):
    """Filter ``src`` ``(before, n, after)`` along its middle axis and write samples
    ``lo .. lo + dst.shape[1]`` of each line to ``dst``."""
    before, n, after = src.shape
    keep = dst.shape[1]
    gain = 1.0
    for z in zs:
        gain *= (1.0 - z) * (1.0 - 1.0 / z)
    if rule == HALO:
        if after == 1:  # lines are rows: a tile takes TILE rows
            buf = np.empty((n, TILE))
            for b0 in range(0, before, TILE):
                _halo_rows(src, dst, buf, b0, min(TILE, before - b0), lo, zs, gain)
        else:  # lines are columns: a tile takes up to COLUMNS neighbouring columns
            width = min(after, COLUMNS)
            buf = np.empty((n, width))
            for b in range(before):
                for a0 in range(0, after, width):
                    _halo_columns(src, dst, buf, b, a0, min(width, after - a0), lo, zs, gain)
        return
    buf = np.empty((n, TILE))
    if after == 1:
        for b0 in range(0, before, TILE):
            w = min(TILE, before - b0)
            for t in range(w):
                for i in range(n):
                    buf[i, t] = src[b0 + t, i, 0]
            _filter_tile(buf, n, w, zs, gain, rule)
            for t in range(w):
                for i in range(keep):
                    dst[b0 + t, i, 0] = buf[lo + i, t]
    else:
        for b in range(before):
            for a0 in range(0, after, TILE):
                w = min(TILE, after - a0)
                for i in range(n):
                    for t in range(w):
                        buf[i, t] = src[b, i, a0 + t]
                _filter_tile(buf, n, w, zs, gain, rule)
                for i in range(keep):
                    for t in range(w):
                        dst[b, i, a0 + t] = buf[lo + i, t]


def _register_kernel():
    global _filter_tile, _halo_lines, _halo_rows, _halo_columns
    _filter_tile = _jit(_filter_tile, boundscheck=False)
    _halo_lines = _jit(_halo_lines, boundscheck=False)
    _halo_rows = _jit(_halo_rows, inline="always")
    _halo_columns = _jit(_halo_columns, inline="always")
    return _jit(_filter_axis, nogil=True, boundscheck=False)


# numba is imported, and the kernel compiled or loaded from the disk cache, at its first call
_KERNEL = numba_loader.DeferredKernel(_register_kernel)


def filter_axis(window: np.ndarray, axis: int, order: int, rule: int, keep: slice):
    """``window`` (float64 or float32, C-contiguous) filtered along ``axis`` with the
    boundary ``rule`` and cropped to ``keep`` along that axis: a new C-contiguous float64
    array (float32 samples are read as float64, exactly, as the filter reads them).

    Examples
    --------
    >>> from scipy import ndimage
    >>> x = np.random.default_rng(0).random((5, 40))
    >>> c = filter_axis(x, 1, 3, MIRROR, slice(0, 40))
    >>> bool(np.allclose(c, ndimage.spline_filter1d(x, 3, axis=1, mode="mirror"), atol=1e-14))
    True
    """
    shape = window.shape
    n = shape[axis]
    before = int(np.prod(shape[:axis], dtype=np.int64))
    after = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    start, stop, _ = keep.indices(n)
    out_shape = shape[:axis] + (stop - start,) + shape[axis + 1 :]
    out = np.empty(out_shape, dtype=np.float64)
    if out.size == 0:
        return out
    kind = window.dtype if window.dtype in (np.float32, np.float64) else np.float64
    src = np.ascontiguousarray(window, dtype=kind).reshape(before, n, after)
    if n == 1:  # nothing to filter (scipy returns a 1-sample line as it is)
        out.reshape(before, 1, after)[...] = src
        return out
    _KERNEL(src, out.reshape(before, stop - start, after), start, poles(order), rule)
    return out


def _runs(indices, layout):
    """The window positions of one axis as runs ``(window slice, piece, piece slice)`` that
    each copy a contiguous (or reversed) range of one piece; ``piece`` None for ``cval``."""
    indices = np.asarray(indices, dtype=np.int64)
    cval = indices == CVAL
    piece = np.searchsorted(layout.starts, np.where(cval, layout.starts[0], indices), "right") - 1
    local = np.where(cval, 0, indices - layout.starts[piece])
    piece = np.where(cval, -1, piece)
    runs, i, n = [], 0, len(indices)
    while i < n:
        j = i + 1
        step = None  # +1, -1, or 0: one sample repeated (``nearest``'s edge), broadcast
        if j < n and piece[j] == piece[i] and not cval[i]:
            step = int(local[j] - local[i])
            if step not in (-1, 0, 1):
                step = None
        while j < n and piece[j] == piece[i] and (cval[i] or step is not None):
            if not cval[i] and local[j] != local[j - 1] + step:
                break
            j += 1
        if cval[i]:
            runs.append((slice(i, j), None, None))
        else:
            a, b = int(local[i]), int(local[j - 1])
            if step == -1:
                src = slice(a, b - 1 if b > 0 else None, -1)
            else:
                src = slice(a, b + 1) if step == 1 else slice(a, a + 1)
            runs.append((slice(i, j), int(piece[i]), src))
        i = j
    return runs


def gather_window(pieces, layouts, indices_per_axis, cval, dtype):
    """The filter window read straight from the input ``pieces`` (row-major over the
    layouts' chunk grid) at the input indices given per axis (:data:`CVAL`: a ``cval``
    sample stored in the input dtype, as scipy's pre-padding does): a C-contiguous array,
    each sample copied (and converted) once, no assembled block in between — float32 for
    float32 samples (a plain copy of half the bytes; the filter reads them as float64,
    exactly), else float64."""
    fill = padded_cval(cval, dtype)
    shape = [len(idx) for idx in indices_per_axis]
    counts = [len(lay.starts) for lay in layouts]
    strides = np.cumprod([1, *counts[::-1]])[::-1][1:]
    out = np.empty(shape, dtype=np.float32 if dtype == np.float32 else np.float64)
    per_axis = [_runs(idx, lay) for idx, lay in zip(indices_per_axis, layouts, strict=True)]
    for combo in itertools.product(*per_axis):
        dst = tuple(r[0] for r in combo)
        if any(r[1] is None for r in combo):
            out[dst] = fill
            continue
        flat = sum(int(r[1]) * int(st) for r, st in zip(combo, strides, strict=True))
        out[dst] = pieces[flat][tuple(r[2] for r in combo)]
    return out


def prefilter_block(pieces, layouts, spec: PrefilterSpec):
    """Coefficients of one chunk, as :func:`.spline.prefilter_block` computes them, with the
    compiled filter: the window is gathered once from the input ``pieces`` (C-contiguous,
    :func:`gather_window`), then each filtered
    axis is filtered and cropped in one kernel call.

    Examples
    --------
    >>> from scipy import ndimage
    >>> from transfuse.executors.blocks import AxisLayout
    >>> x = np.random.default_rng(0).random((50, 60))
    >>> spec = PrefilterSpec((50, 60), 3, "mirror", 0, 0.0, 23, (True, False),
    ...                      ((0, 50), (0, 30)), (True, True))
    >>> c = prefilter_block([x], [AxisLayout([0], [50]), AxisLayout([0], [60])], spec)
    >>> ref = ndimage.spline_filter(x, 3, mode="mirror")[:, :30]
    >>> bool(np.abs(c - ref).max() < 1e-10)
    True
    """
    order, depth = spec.order, spec.depth
    whole_rule = {"reflect": REFLECT, "nearest": REFLECT, "grid-wrap": WRAP}.get(spec.mode, MIRROR)
    dtype = pieces[0].dtype
    window = gather_window(pieces, layouts, filter_indices(spec), spec.cval, dtype)
    for axis, (_, pad, filtered, whole, (s, e)) in enumerate(spec.axes()):
        if not filtered:
            continue  # gathered as the span already
        keep = slice(s + pad, e + pad) if whole else slice(depth, depth + e - s)
        n = window.shape[axis]
        if n == 1:
            pass
        elif whole:  # scipy's own filter: bit for bit the reference (single-chunk axes)
            window = window.astype(np.float64, copy=False)  # filtered in place, in float64
            scipy_mode = ("mirror", "reflect", "grid-wrap", None)[whole_rule]
            ndimage.spline_filter1d(window, order, axis=axis, output=window, mode=scipy_mode)
        else:
            window = filter_axis(window, axis, order, whole_rule if whole else HALO, keep)
            continue
        sl = [slice(None)] * window.ndim
        sl[axis] = keep
        window = np.ascontiguousarray(window[tuple(sl)])
    return window.astype(spec.dtype, copy=False)


def warm_up() -> float:
    """Compile the prefilter kernel (or load it from numba's disk cache) now; the seconds it
    took (0.0 without numba).

    Examples
    --------
    >>> warm_up() >= 0.0
    True
    """
    if not AVAILABLE:
        return 0.0
    t0 = time.perf_counter()
    for dtype in (np.float64, np.float32):
        filter_axis(np.zeros((2, 4, 2), dtype), 1, 3, HALO, slice(1, 3))
    return time.perf_counter() - t0

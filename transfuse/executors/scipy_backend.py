"""The reference backend, ``"scipy"``: scipy.ndimage per chunk.

Each output chunk evaluates the pass's stages over its box (:mod:`.stages`), applies
scipy's boundary rules to the coordinates and interpolates with
:func:`scipy.ndimage.map_coordinates` from its assembled coefficient window: the result
equals scipy.ndimage on the whole array (orders 0 and 1 bit for bit).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy import ndimage

from ..planner.boundary import CVAL, fold_coordinates, tap_source_index
from ..planner.physical import CoordinateArrayStage
from . import stages as stage_eval
from .blocks import assemble, assemble_region
from .spline import prefilter_block

__all__ = ["ScipyExecutor", "cast_like_scipy"]


def cast_like_scipy(values, dtype):
    """Convert float64 results to ``dtype`` as scipy.ndimage does: integers round half away
    from zero and saturate (unsigned: negatives become 0); booleans are the truncated value
    taken modulo 256 (scipy's unsigned char), tested for non-zero; floats are cast."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if dtype.kind == "u":
            t = np.where(values > 0, values + 0.5, 0.0)
        else:
            t = np.where(values > 0, values + 0.5, values - 0.5)
        return np.trunc(np.clip(t, info.min, info.max)).astype(dtype)
    if dtype.kind == "b":
        # scipy truncates to an unsigned char, then tests it: 0.7 is False, 1.4 True,
        # 256.4 False
        t = np.trunc(np.clip(values, -(2.0**62), 2.0**62)).astype(np.int64)
        return (t % 256) != 0
    return values.astype(dtype, copy=False)


def _has_coordinates(job) -> bool:
    first = job.stages[0]
    return not isinstance(first, CoordinateArrayStage) or first.array is not None


def resample_chunk(backend, job, footprint, pieces, layouts):
    """One output chunk: ``job`` (stages, input shape, options, dtype), ``footprint`` (box
    and coefficient window), ``pieces`` (the coefficient chunks read, row-major over the
    footprint's chunk grid) and ``layouts`` (where each axis's domain indices sit)."""
    shape = tuple(e - s for s, e in footprint.box)
    opts = job.options
    ndi = backend.ndi
    if footprint.axes is None:
        if opts.mode == "grid-constant" and opts.order > 0 and _has_coordinates(job):
            return _all_cval_taps(backend, job, footprint)
        return np.full(shape, cast_like_scipy(np.array(opts.cval), job.dtype), dtype=job.dtype)
    if job.batch_axes:
        return _resample_slices(backend, job, footprint, pieces, layouts)
    counts = [len(lay.starts) for lay in layouts]  # the pieces' grid
    window_mode = "nearest"  # taps never leave the window: any mode will do
    if footprint.direct:
        # every coordinate inside the array, every tap inside the coefficient array: no
        # folding, no masking, and the window is one contiguous region
        window = assemble_region(pieces, counts, layouts, [(w.lo, w.hi) for w in footprint.axes])
        fast = backend.fast_direct(job, footprint, window)
        if fast is not None:
            return fast
        coords = backend.coordinates(job.stages, footprint.box)
        for h, w in enumerate(footprint.axes):
            _to_window_frame(coords, h, w.lo, opts.pad, opts.order)
        outside, split = None, []
    else:
        fast = backend.fast_constant(job, footprint, pieces, counts, layouts)
        if fast is not None:
            return fast
        coords = backend.coordinates(job.stages, footprint.box)
        window, outside, window_mode, split = _folded_window(
            job, footprint, coords, pieces, counts, layouts
        )
    direct_dtype = job.dtype if np.dtype(job.dtype).kind == "f" else np.float64
    kw = dict(order=opts.order, mode=window_mode, cval=opts.cval, prefilter=False)
    if split:
        out = _map_split(window, coords, split, direct_dtype, kw, ndi)
    else:
        out = ndi.map_coordinates(window, coords, output=direct_dtype, **kw)
    if outside is not None and outside.any():
        out[outside] = opts.cval
    return cast_like_scipy(out, job.dtype)


def gather_window(sources, pieces, counts, layouts):
    """The window whose samples along each axis are the domain indices ``sources``: one
    contiguous copy when they are consecutive, else gathered index by index."""
    if all(src.size == 1 or np.all(np.diff(src) == 1) for src in sources):
        return assemble_region(pieces, counts, layouts, [(s[0], s[-1]) for s in sources])
    positions = [lay.positions(src) for lay, src in zip(layouts, sources, strict=True)]
    return assemble(pieces, counts)[np.ix_(*positions)]


def _resample_slices(backend, job, footprint, pieces, layouts):
    """A chunk of a pass that works slice by slice along ``job.batch_axes`` (scipy's
    ``rotate`` of an n-D image): each slice is resampled on its own with the plane job."""
    batch = job.batch_axes
    planes = [a for a in range(len(footprint.box)) if a not in batch]
    plane_job = job.plane()
    plane_fp = dataclasses.replace(
        footprint,
        box=tuple(footprint.box[a] for a in planes),
        axes=tuple(footprint.axes[a] for a in planes),
    )
    plane_layouts = [layouts[a] for a in planes]
    grid = list(itertools.product(*(range(len(lay.starts)) for lay in layouts)))
    out = np.empty(tuple(e - s for s, e in footprint.box), dtype=job.dtype)
    for index in itertools.product(*(range(*footprint.box[a]) for a in batch)):
        # the chunk holding this slice along each batch axis, and the slice within it
        which, offset = {}, {}
        for a, v in zip(batch, index, strict=True):
            starts, sizes = layouts[a].starts, layouts[a].sizes
            k = next(
                i for i, (s, n) in enumerate(zip(starts, sizes, strict=True)) if s <= v < s + n
            )
            which[a], offset[a] = k, int(v - starts[k])
        sub = []
        for pos, piece in zip(grid, pieces, strict=True):
            if all(pos[a] == which[a] for a in batch):
                sub.append(
                    piece[
                        tuple(offset[a] if a in batch else slice(None) for a in range(piece.ndim))
                    ]
                )
        result = resample_chunk(backend, plane_job, plane_fp, sub, plane_layouts)
        target = [slice(None)] * out.ndim
        for a, v in zip(batch, index, strict=True):
            target[a] = v - footprint.box[a][0]
        out[tuple(target)] = result
    return out


def _to_window_frame(coords, h, start, pad, order):
    """Shift axis ``h`` of the coordinates into a window starting at domain index ``start``,
    rounding as scipy does: it adds the pre-padding first, then the shift is exact as long
    as the window does not start left of the padded array. Order 0 picks its sample in the
    global frame (``floor(c + 0.5)``, scipy's expression), so the window index is an exact
    integer whatever the shift."""
    if order == 0:
        np.floor(coords[h] + 0.5, out=coords[h])  # order 0 has no pre-padding
    elif pad:
        coords[h] += pad
    coords[h] -= start + pad


def _all_cval_taps(backend, job, footprint):
    """A ``grid-constant`` chunk whose every tap reads ``cval``: scipy still weighs the taps,
    ``sum(cval * w)``, which can differ from ``cval`` in the last bit. Interpolate a window
    of ``cval`` at each point's fractional position (scipy's own ``x - floor(x)``, so the
    weights are scipy's)."""
    opts = job.options
    if job.batch_axes:  # slice by slice: the same plane result for every slice
        planes = [a for a in range(len(footprint.box)) if a not in job.batch_axes]
        plane_fp = dataclasses.replace(footprint, box=tuple(footprint.box[a] for a in planes))
        plane = _all_cval_taps(backend, job.plane(), plane_fp)
        shape = tuple(e - s for s, e in footprint.box)
        return np.broadcast_to(np.expand_dims(plane, job.batch_axes), shape).copy()
    coords = backend.coordinates(job.stages, footprint.box)
    if opts.pad:
        coords += opts.pad
    half = 0.0 if opts.order % 2 else 0.5
    coords -= np.floor(coords + half)
    window = np.full((1,) * coords.shape[0], opts.cval)
    out = backend.ndi.map_coordinates(
        window, coords, order=opts.order, mode="grid-constant", cval=opts.cval, prefilter=False
    )
    return cast_like_scipy(out, job.dtype)


def _map_split(window, coords, split, dtype, kw, ndi):
    """``map_coordinates`` for order 1 where some folded coordinates lie in ``[-1, 0)``
    (``reflect``/``grid-wrap``) and the window starts at domain -1: shifting a coordinate
    ``c >= 0`` by +1 would round it. Points left of 0 on a split axis use the window as it
    is (``c + 1`` is scipy's own ``c - floor(c)``); the others use it from domain index 0
    (no shift). ``split`` lists ``(axis, left_mask, window_start)``; those axes of
    ``coords`` are still in the global frame."""
    out = np.empty(coords.shape[1:], dtype=dtype)
    key = np.zeros(coords.shape[1:], dtype=np.int64)
    for bit, (_, left, _) in enumerate(split):
        key |= left.astype(np.int64) << bit
    for k in np.unique(key):
        sel = key == k
        sub = [slice(None)] * window.ndim
        pts = [c[sel] for c in coords]
        for bit, (h, _, start) in enumerate(split):
            if (k >> bit) & 1:
                pts[h] = pts[h] - start
            else:
                sub[h] = slice(-start, None)
        out[sel] = ndi.map_coordinates(window[tuple(sub)], np.array(pts), output=dtype, **kw)
    return out


#: Modes whose taps left of the array resolve from the left edge alone (so a window that
#: starts at the array's first sample can let scipy resolve them), and the scipy mode that
#: does it on the window. grid-wrap reads the far end; reflect folds coordinates twice.
_LEFT_EDGE_MODE = {
    "nearest": "nearest",
    "grid-constant": "grid-constant",
    "mirror": "mirror",
    "constant": "mirror",
    "wrap": "mirror",
}


def _folded_window(job, footprint, coords, pieces, counts, layouts):
    """Apply the mode's coordinate rule in place and gather the window tap by tap.

    Returns the window, the mask of points that read ``cval`` (constant mode), the mode
    to interpolate the window with and the axes :func:`_map_split` must handle.
    """
    opts = job.options
    pad = opts.pad
    outside = None
    cval_masks = []
    window_mode = "nearest"
    starts = []
    split = []
    sources = []
    for h, (n, w) in enumerate(zip(job.input_shape, footprint.axes, strict=True)):
        coords[h], mask = fold_coordinates(coords[h], n, opts.mode, pad, opts.order)
        if mask is not None:
            outside = mask if outside is None else (outside | mask)
        start, stop = w.lo, w.hi
        if start < -pad and opts.mode in _LEFT_EDGE_MODE:
            # Shifting coordinates right of 0 would round them; start the window at the
            # array's first sample instead and let scipy resolve the taps left of it.
            window_mode = _LEFT_EDGE_MODE[opts.mode]
            if window_mode == "mirror":
                stop = max(stop, -start - 2 * pad)
            start = -pad
            stop = max(stop, start)
        if stop > n - 1 + pad and opts.mode in _LEFT_EDGE_MODE and w.lo >= -pad:
            # Likewise on the right (where shifting is exact anyway): end the window at the
            # array's last sample, so that it is one contiguous region (one copy), and let
            # scipy resolve the taps right of it; the window must hold their mirror images.
            window_mode = _LEFT_EDGE_MODE[opts.mode]
            far = tap_source_index(np.arange(n + pad, stop + 1), n, opts.mode, pad)
            far = far[far != CVAL]
            if far.size:
                start = min(start, int(far.min()))
            stop = max(n - 1 + pad, start)
        src = tap_source_index(np.arange(start, stop + 1), n, opts.mode, pad)
        sources.append(src)
        cval_masks.append(src == CVAL)
        starts.append(start)
        if start < 0 and opts.order == 1 and opts.mode in ("reflect", "grid-wrap"):
            # folded coordinates lie in [-1, n) and the window starts at -1 (pad is 0)
            split.append((h, coords[h] < 0, start))
            continue
        _to_window_frame(coords, h, start, pad, opts.order)
    if outside is not None and outside.any():
        for h, w in enumerate(footprint.axes):
            coords[h][outside] = w.first - starts[h]  # constant mode: no pre-padding
    else:
        outside = None
    window = gather_window(sources, pieces, counts, layouts)
    if any(m.any() for m in cval_masks):
        window = window.astype(np.float64)
        for axis, m in enumerate(cval_masks):
            if m.any():
                sl = [slice(None)] * window.ndim
                sl[axis] = m
                window[tuple(sl)] = opts.cval
    return window, outside, window_mode, split


class ScipyExecutor:
    """Executes plans with scipy.ndimage per chunk (the reference backend)."""

    name = "scipy"
    ndi = ndimage

    def meta(self, dtype, ndim: int):
        return np.empty((0,) * ndim, dtype=dtype)

    def prefilter_chunk(self, spec, pieces, layouts):
        """One chunk of spline coefficients (see :func:`.spline.prefilter_block`)."""
        counts = [len(lay.starts) for lay in layouts]
        return prefilter_block(assemble(pieces, counts), layouts, spec, self.ndi)

    def describe(self, p) -> str:
        """What runs the chunks of the physical pass ``p``, in words."""
        return "scipy.ndimage per chunk"

    def coordinates(self, stages, box):
        """Input coordinates of every point of ``box`` through ``stages``."""
        return stage_eval.coordinates(stages, box, self.ndi)

    def points(self, stages, p):
        """``stages`` applied to points ``(ndim, ...)``."""
        return stage_eval.points(stages, p, self.ndi)

    # hooks for compiled kernels (the "cpu" backend): None means "not handled"
    def fast_direct(self, job, footprint, window):
        return None

    def fast_constant(self, job, footprint, pieces, counts, layouts):
        return None

    def resample_chunk(self, job, footprint, pieces, layouts):
        """One output chunk (see :class:`~transfuse.executors.base.Executor`)."""
        return resample_chunk(self, job, footprint, pieces, layouts)

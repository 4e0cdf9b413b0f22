"""Per-chunk work: interpolate one output chunk from its assembled coefficient window.

Everything here is plain numpy/scipy (or cupy/cupyx through the ``xp``/``ndi`` arguments):
no dask, no sympy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..planner.boundary import CVAL, fold_coordinates, tap_source_index
from .blocks import AxisLayout, assemble, assemble_region

__all__ = ["cast_like_scipy", "resample_chunk"]


def cast_like_scipy(values, dtype):
    """Convert float64 results to ``dtype`` as scipy.ndimage does: integers round half away
    from zero and saturate (unsigned: negatives become 0); floats are cast."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if dtype.kind == "u":
            t = np.where(values > 0, values + 0.5, 0.0)
        else:
            t = np.where(values > 0, values + 0.5, values - 0.5)
        return np.trunc(np.clip(t, info.min, info.max)).astype(dtype)
    if dtype.kind == "b":
        return values != 0
    return values.astype(dtype, copy=False)


def resample_chunk(job, footprint, layouts_info, n_extras, *args, ndi=ndimage):
    """One output chunk.

    Parameters
    ----------
    job : ResampleJob
        What is shared by every chunk of the pass (map, input shape, options, dtype).
    footprint : ChunkFootprint
        This chunk's box and coefficient window.
    layouts_info : list of (starts, sizes) per axis
        Domain start and size of the coefficient chunks in ``pieces`` along each axis.
    n_extras : int
        How many of ``args`` come first and belong to the coordinate map (e.g. a chunk of a
        coordinate array); they are passed to ``coordinate_map.coordinates``.
    *args : ndarray
        The extras, then the coefficient chunks, row-major over the footprint's chunk grid.
    """
    extras, pieces = args[:n_extras], args[n_extras:]
    shape = tuple(e - s for s, e in footprint.box)
    opts = job.options
    if footprint.axes is None:
        return np.full(shape, cast_like_scipy(np.array(opts.cval), job.dtype), dtype=job.dtype)
    counts = [len(w.chunks) for w in footprint.axes]
    layouts = [AxisLayout(*info) for info in layouts_info]
    coords = job.coordinate_map.coordinates(footprint.box, *extras)
    if footprint.direct:
        # every coordinate inside the array, every tap inside the coefficient array: no
        # folding, no masking, and the window is one contiguous region
        window = assemble_region(pieces, counts, layouts, [(w.lo, w.hi) for w in footprint.axes])
        for h, w in enumerate(footprint.axes):
            coords[h] -= w.lo
        outside = None
    else:
        window, outside = _folded_window(job, footprint, coords, assemble(pieces, counts), layouts)
    direct_dtype = job.dtype if np.dtype(job.dtype).kind == "f" else np.float64
    out = ndi.map_coordinates(
        window, coords, order=opts.order, mode="nearest", prefilter=False, output=direct_dtype
    )
    if outside is not None and outside.any():
        out[outside] = opts.cval
    return cast_like_scipy(out, job.dtype)


def _folded_window(job, footprint, coords, block, layouts):
    """Apply the mode's coordinate rule in place and gather the window tap by tap."""
    opts = job.options
    outside = None
    positions = []
    cval_masks = []
    for h, (n, w, lay) in enumerate(zip(job.input_shape, footprint.axes, layouts, strict=True)):
        coords[h], mask = fold_coordinates(coords[h], n, opts.mode, opts.pad, opts.order)
        if mask is not None:
            outside = mask if outside is None else (outside | mask)
        src = tap_source_index(np.arange(w.lo, w.hi + 1), n, opts.mode, opts.pad)
        positions.append(lay.positions(src))
        cval_masks.append(src == CVAL)
        coords[h] -= w.lo
    if outside is not None:
        if outside.any():
            for h, w in enumerate(footprint.axes):
                coords[h][outside] = w.first - w.lo
        else:
            outside = None
    window = block[np.ix_(*positions)]
    if any(m.any() for m in cval_masks):
        window = window.astype(np.float64)
        for axis, m in enumerate(cval_masks):
            if m.any():
                sl = [slice(None)] * window.ndim
                sl[axis] = m
                window[tuple(sl)] = opts.cval
    return window, outside


def prefilter_chunk(spec, layouts_info, counts, *pieces):
    """One chunk of spline coefficients (see :func:`transfuse.executors.spline.prefilter_block`)."""
    from .spline import prefilter_block

    block = assemble(pieces, counts)
    layouts = [AxisLayout(*info) for info in layouts_info]
    return prefilter_block(block, layouts, spec)

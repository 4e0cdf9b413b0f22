"""Footprints: for each output chunk, the coefficient window it interpolates from and the
input chunks that window reads.

The window is expressed in the *domain* of the coefficient array, ``[-pad, n-1+pad]`` per
axis (``pad`` is scipy's pre-padding, 12 or 0). A window may reach outside the domain; the
mode's tap rule (:func:`~transfuse.planner.boundary.tap_source_index`) says which sample each
index reads, and only the chunks holding those samples become dependencies.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools

import numpy as np

from .boundary import CVAL, fold_interval, tap_range, tap_source_index
from .options import ResampleOptions

__all__ = [
    "AxisWindow",
    "ChunkFootprint",
    "axis_pads",
    "chunk_bounds",
    "coefficient_chunks",
    "footprints",
]


@dataclasses.dataclass(frozen=True)
class AxisWindow:
    """The window along one axis: domain indices ``lo..hi`` (inclusive), the coefficient
    chunks (by index along the axis) holding the samples they read, and ``first``/``last``,
    the range of the (folded) coordinates themselves."""

    lo: int
    hi: int
    chunks: tuple[int, ...]
    first: float
    last: float


@dataclasses.dataclass(frozen=True)
class ChunkFootprint:
    """What one output chunk needs. ``axes`` is None when every point of the chunk is
    ``cval`` (no input read). ``direct`` is True when no coordinate is folded, masked or
    clamped and every tap lies inside the coefficient array, so the kernel may interpolate
    straight from a contiguous slice."""

    box: tuple[tuple[int, int], ...]
    axes: tuple[AxisWindow, ...] | None
    direct: bool

    @property
    def dependencies(self) -> list[tuple[int, ...]]:
        """Block indices of the coefficient chunks read, in row-major order."""
        if self.axes is None:
            return []
        return list(itertools.product(*(w.chunks for w in self.axes)))


def chunk_bounds(chunks: tuple[int, ...], pad: int = 0) -> np.ndarray:
    """Domain start of each chunk plus the end of the last (the first chunk starts at -pad)."""
    bounds = np.concatenate([[0], np.cumsum(chunks)]) - pad
    return bounds


def axis_pads(pad: int, ndim: int, batch_axes=()) -> tuple[int, ...]:
    """Pre-padding per axis: ``pad`` on the axes that are interpolated, 0 on batch axes."""
    return tuple(0 if a in batch_axes else pad for a in range(ndim))


def coefficient_chunks(chunks, pad):
    """Chunks of the coefficient array: the input's, with the pre-padding (an int, or one
    per axis) added at both ends."""
    pads = (pad,) * len(chunks) if np.ndim(pad) == 0 else tuple(pad)
    out = []
    for c, p in zip(chunks, pads, strict=True):
        c = list(c)
        c[0] += p
        c[-1] += p
        out.append(tuple(c))
    return tuple(out)


def _span_blocks(lo: int, hi: int, bounds: list) -> tuple[int, ...]:
    """Blocks holding the contiguous domain indices ``lo..hi`` (bounds as a list)."""
    first = bisect.bisect_right(bounds, lo) - 1
    last = bisect.bisect_right(bounds, hi) - 1
    return tuple(range(first, last + 1))


def _blocks_for(indices: np.ndarray, bounds: np.ndarray) -> tuple[int, ...]:
    indices = indices[indices != CVAL]
    if indices.size == 0:
        return ()
    ids = np.searchsorted(bounds, indices, side="right") - 1
    return tuple(int(i) for i in np.unique(ids))


def footprints(
    bounds,
    output_chunks: tuple[tuple[int, ...], ...],
    input_shape: tuple[int, ...],
    coefficient_chunks: tuple[tuple[int, ...], ...],
    options: ResampleOptions,
    batch_axes: tuple[int, ...] = (),
) -> dict[tuple[int, ...], ChunkFootprint]:
    """The footprint of every output chunk of a resampling pass.

    Parameters
    ----------
    bounds
        An object with ``ranges(boxes)`` (see :class:`~transfuse.planner.bounds.MapBounds`).
    output_chunks : tuple of tuples
        dask-style chunk sizes of the output.
    input_shape : tuple of int
        Shape of the input (without pre-padding).
    coefficient_chunks : tuple of tuples
        Chunk sizes of the coefficient array (pre-padding included in the end chunks).
    options : ResampleOptions
    batch_axes : tuple of int
        Axes the pass works slice by slice along (the map is the identity there): each reads
        exactly the output chunk's own range (no spline support, no pre-padding).

    Returns
    -------
    dict mapping output block index to :class:`ChunkFootprint`.
    """
    order, mode = options.order, options.mode
    pads = axis_pads(options.pad, len(input_shape), batch_axes)
    out_bounds = [np.concatenate([[0], np.cumsum(c)]) for c in output_chunks]
    block_ids = list(itertools.product(*(range(len(c)) for c in output_chunks)))
    boxes = np.array(
        [
            [(out_bounds[a][i], out_bounds[a][i + 1]) for a, i in enumerate(idx)]
            for idx in block_ids
        ],
        dtype=np.int64,
    ).reshape(len(block_ids), len(output_chunks), 2)
    ranges = bounds.ranges(boxes)
    coef_bounds = [chunk_bounds(c, p) for c, p in zip(coefficient_chunks, pads, strict=True)]
    bound_lists = [b.tolist() for b in coef_bounds]
    cache: dict[tuple, tuple[int, ...]] = {}
    result = {}
    box_list = boxes.tolist()
    range_list = ranges.tolist()
    for b, idx in enumerate(block_ids):
        box = tuple(map(tuple, box_list[b]))
        axes = []
        direct = True
        for h, n in enumerate(input_shape):
            pad = pads[h]
            if h in batch_axes:
                s, e = box[h]
                key = ("batch", h, s, e)
                if key not in cache:
                    cache[key] = _span_blocks(s, e - 1, bound_lists[h])
                axes.append(AxisWindow(s, e - 1, cache[key], float(s), float(e - 1)))
                continue
            a, z = range_list[b][h]
            folded = fold_interval(a, z, n, mode, pad, order)
            if folded is None:
                axes = None
                break
            fa, fz = folded
            lo, hi = tap_range(fa, fz, order)
            if (fa, fz) != (a, z) or lo < -pad or hi > n - 1 + pad:
                direct = False
            key = (h, lo, hi)
            if key not in cache:
                if -pad <= lo and hi <= n - 1 + pad:  # inside: the taps read lo..hi
                    cache[key] = _span_blocks(lo, hi, bound_lists[h])
                else:
                    src = tap_source_index(np.arange(lo, hi + 1), n, mode, pad)
                    cache[key] = _blocks_for(src, coef_bounds[h])
            axes.append(AxisWindow(lo, hi, cache[key], float(fa), float(fz)))
        if axes is not None and any(not w.chunks for w in axes):
            axes = None  # every tap reads cval (grid-constant far outside)
        result[idx] = ChunkFootprint(
            box, None if axes is None else tuple(axes), direct and axes is not None
        )
    return result

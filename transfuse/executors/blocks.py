"""Assembling the chunks a task depends on into one array, and addressing it."""

from __future__ import annotations

import itertools

import numpy as np

from ..planner.boundary import CVAL

__all__ = ["assemble", "AxisLayout", "region_view"]


class AxisLayout:
    """Where domain indices of one axis sit in an assembled block.

    Parameters
    ----------
    starts, sizes : sequence of int
        Domain start and length of each chunk taken along the axis, in block order.
    """

    def __init__(self, starts, sizes):
        self.starts = np.asarray(starts, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    def positions(self, indices):
        """Block positions of domain ``indices`` (CVAL entries map to 0; mask them)."""
        indices = np.asarray(indices, dtype=np.int64)
        valid = indices != CVAL
        which = (
            np.searchsorted(self.starts, np.where(valid, indices, self.starts[0]), side="right") - 1
        )
        pos = self.offsets[which] + np.where(valid, indices, self.starts[0]) - self.starts[which]
        return np.where(valid, pos, 0)

    def slice_for(self, lo: int, hi: int):
        """A slice of the block for the contiguous domain range ``lo..hi``, or None."""
        pos = self.positions(np.array([lo, hi]))
        if pos[1] - pos[0] != hi - lo:
            return None
        return slice(int(pos[0]), int(pos[1]) + 1)


def assemble(pieces, counts):
    """Concatenate chunks given in row-major order over a grid of ``counts`` per axis."""
    if len(pieces) == 1:
        return pieces[0]
    ndim = len(counts)
    grid = np.empty(counts, dtype=object)
    for idx, piece in zip(itertools.product(*(range(c) for c in counts)), pieces, strict=True):
        grid[idx] = piece
    sizes = []
    for axis in range(ndim):
        first = [0] * ndim
        axis_sizes = []
        for k in range(counts[axis]):
            first[axis] = k
            axis_sizes.append(grid[tuple(first)].shape[axis])
        sizes.append(axis_sizes)
    out = np.empty([sum(s) for s in sizes], dtype=pieces[0].dtype)
    offsets = [np.concatenate([[0], np.cumsum(s)]) for s in sizes]
    for idx in itertools.product(*(range(c) for c in counts)):
        sl = tuple(slice(offsets[a][i], offsets[a][i + 1]) for a, i in enumerate(idx))
        out[sl] = grid[idx]
    return out


def region_parts(pieces, counts, layouts, ranges):
    """For each piece overlapping the contiguous domain ``ranges`` (``[(lo, hi), ...]``,
    inclusive): ``(piece, src, dst)``, the slices of the piece inside the region and where
    they go in it."""
    ndim = len(counts)
    for idx, piece in zip(itertools.product(*(range(c) for c in counts)), pieces, strict=True):
        src, dst = [], []
        for a in range(ndim):
            start = int(layouts[a].starts[idx[a]])
            size = int(layouts[a].sizes[idx[a]])
            lo, hi = ranges[a]
            s, e = max(lo, start), min(hi + 1, start + size)
            if s >= e:
                break
            src.append(slice(s - start, e - start))
            dst.append(slice(s - lo, e - lo))
        else:
            yield piece, tuple(src), tuple(dst)


def assemble_region(pieces, counts, layouts, ranges, to_array=None, empty=None):
    """Like :func:`assemble` followed by slicing the contiguous domain ``ranges``
    (``[(lo, hi), ...]``, inclusive), but copying only what lies inside the region.
    ``to_array`` / ``empty`` place the parts elsewhere (a device); default: numpy."""
    shape = tuple(hi - lo + 1 for lo, hi in ranges)
    out = None
    for piece, src, dst in region_parts(pieces, counts, layouts, ranges):
        part = piece[src] if to_array is None else to_array(piece[src])
        if len(pieces) == 1:
            return part
        if out is None:
            out = (np.empty if empty is None else empty)(shape, piece.dtype)
        out[dst] = part
    return out


def _root(a: np.ndarray) -> np.ndarray:
    """The array whose memory ``a`` views (``a`` itself when it owns its data)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def region_view(pieces, counts, layouts, ranges):
    """The contiguous domain ``ranges`` (``[(lo, hi), ...]``, inclusive) as one view, no
    copy, when the pieces are views of one array, each where its domain position puts it
    (the chunks ``dask.array.from_array`` cuts out of a numpy array); else None.

    Every sample of the region lies in one of the pieces, and each piece's samples sit at
    ``origin + index * strides`` of the one array, so the view addresses nothing else.

    Examples
    --------
    >>> a = np.arange(60.0).reshape(6, 10)
    >>> pieces = [a[:3, :5], a[:3, 5:], a[3:, :5], a[3:, 5:]]
    >>> layouts = [AxisLayout([0, 3], [3, 3]), AxisLayout([0, 5], [5, 5])]
    >>> v = region_view(pieces, (2, 2), layouts, [(1, 4), (3, 7)])
    >>> np.shares_memory(v, a), bool((v == a[1:5, 3:8]).all())
    (True, True)
    >>> region_view([p.copy() for p in pieces], (2, 2), layouts, [(1, 4), (3, 7)]) is None
    True
    """
    first = pieces[0]
    if len(pieces) < 2 or not isinstance(first, np.ndarray):
        return None
    root, strides, dtype = _root(first), first.strides, first.dtype
    origin = first.__array_interface__["data"][0]
    starts0 = [int(lay.starts[0]) for lay in layouts]
    holder = None
    for idx, piece in zip(itertools.product(*(range(c) for c in counts)), pieces, strict=True):
        if (
            not isinstance(piece, np.ndarray)
            or piece.dtype != dtype
            or piece.strides != strides
            or _root(piece) is not root
        ):
            return None
        at = origin
        inside = True
        for a, lay in enumerate(layouts):
            start = int(lay.starts[idx[a]])
            if piece.shape[a] != lay.sizes[idx[a]]:
                return None
            at += (start - starts0[a]) * strides[a]
            inside = inside and start <= ranges[a][0] < start + piece.shape[a]
        if piece.__array_interface__["data"][0] != at:
            return None
        if inside:
            holder = (piece, idx)
    if holder is None:
        return None
    piece, idx = holder
    corner = piece[
        tuple(
            slice(lo - int(lay.starts[i]), None)
            for (lo, _), lay, i in zip(ranges, layouts, idx, strict=True)
        )
    ]
    shape = tuple(hi - lo + 1 for lo, hi in ranges)
    return np.lib.stride_tricks.as_strided(
        corner, shape=shape, strides=strides, writeable=corner.flags.writeable
    )

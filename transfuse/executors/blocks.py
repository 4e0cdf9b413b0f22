"""Assembling the chunks a task depends on into one array, and addressing it."""

from __future__ import annotations

import itertools

import numpy as np

from ..planner.boundary import CVAL

__all__ = ["assemble", "AxisLayout"]


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

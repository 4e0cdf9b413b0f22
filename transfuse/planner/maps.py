"""Physical maps for non-affine chains (see :mod:`transfuse.planner.coords` for the protocol).

* :class:`ArrayCoordinateMap` — coordinates held in a (dask) array, one chunk per output
  chunk; footprints come from a per-chunk min/max reduction run once at plan time.
* :class:`ChainMap` — any chain of transforms as ONE pull map evaluated per output chunk:
  a base (the output grid through the innermost run of affine transforms, or a coordinate
  array) followed by stages applied from the inside out (fused affine matrices,
  displacement fields, expressions, callables).

How :meth:`ChainMap.ranges` bounds a chunk (sound, never smaller than the true range):

* each output chunk is split into a few sub-boxes (:attr:`ChainMap.subdivide` per axis);
  the base gives each sub-box's exact range (affine corners) or its coordinate chunk's
  min/max;
* every stage maps a box of points to a box containing its image: affine stages exactly
  (interval matrix product); displacement fields by ``box + [min u, max u]`` where the
  min/max are taken over the spline coefficients the box's points can reach (a min/max
  pyramid of the coefficient array, built once per field; B-spline weights are
  non-negative and sum to one, so every interpolated value lies in that range; ``cval``
  joins where the mode reads it); expressions by interval arithmetic
  (:mod:`transfuse.planner.interval`); callables by their user-given bound, or the whole
  input;
* the chunk's range is the union over its sub-boxes.
"""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np

from ..transforms import Compose, Transform
from ..transforms.nonlinear import CoordinateMap, array_token
from .coords import AffineMap
from .stages import AffineStage, ExprStage, FieldStage, MinMaxPyramid, NodeStage, _stage_for

__all__ = [
    "AffineStage",
    "ArrayCoordinateMap",
    "ChainMap",
    "ExprStage",
    "FieldStage",
    "MinMaxPyramid",
    "NodeStage",
    "compile_map",
]

#: Ranges are clipped to this magnitude (far beyond any image: the footprint is the same).
_HUGE = 1e15


def _chunk_spec(chunks, n):
    return (chunks,) * n if np.ndim(chunks) == 0 else tuple(chunks)


def _block_min_max(block):
    flat = block.reshape(block.shape[0], -1)
    return np.stack([flat.min(axis=1), flat.max(axis=1)], axis=-1)


class ArrayCoordinateMap:
    """Coordinates given for every output point by an array of shape
    ``(ndim_in, *output_shape)``; the output is chunked like ``coords[0]``.

    Parameters
    ----------
    coords : numpy or dask array
    chunks : optional
        Output chunks for a numpy ``coords`` (a dask array keeps its own).
    """

    form = "coordinates"

    def __init__(self, coords, chunks=None):
        if not isinstance(coords, da.Array):
            spec = "auto" if chunks is None else (-1, *_chunk_spec(chunks, coords.ndim - 1))
            coords = da.from_array(np.asarray(coords), chunks=spec)
        if len(coords.chunks[0]) != 1:
            coords = coords.rechunk({0: -1})
        self.array = coords.astype(np.float64) if coords.dtype != np.float64 else coords
        self.ndim_in = int(coords.shape[0])
        self.output_shape = tuple(int(n) for n in coords.shape[1:])
        self.output_chunks = tuple(coords.chunks[1:])
        self._bounds = [np.concatenate([[0], np.cumsum(c)]) for c in self.output_chunks]
        self._ranges = None

    @property
    def token(self) -> tuple:
        return ("coordinates", array_token(self.array))

    @property
    def collections(self) -> tuple:
        return (self.array,)

    @property
    def matrix(self):
        return None

    def extra_keys(self, block_index) -> list:
        return [(self.array.name, 0, *block_index)]

    def coordinates(self, box, block) -> np.ndarray:
        """The coordinate chunk itself (copied: the kernel folds coordinates in place)."""
        return np.array(block, dtype=np.float64, copy=True)

    def block_ranges(self) -> np.ndarray:
        """Per output block, per input axis, ``[min, max]`` (computed once, then cached)."""
        if self._ranges is None:
            blocks = self.array.to_delayed()[0]
            flat = [dask.delayed(_block_min_max)(b) for b in blocks.reshape(-1)]
            values = dask.compute(*flat)
            arr = np.stack(values).reshape(*blocks.shape, self.ndim_in, 2)
            if not np.all(np.isfinite(arr)):
                raise ValueError("coordinates contain NaN or infinite values")
            self._ranges = arr
        return self._ranges

    def ranges(self, boxes) -> np.ndarray:
        table = self.block_ranges()
        out = np.empty((len(boxes), self.ndim_in, 2))
        for b, box in enumerate(np.asarray(boxes)):
            idx = tuple(
                int(np.searchsorted(bounds, start, side="right") - 1)
                for bounds, start in zip(self._bounds, box[:, 0], strict=True)
            )
            out[b] = table[idx]
        return out


# ------------------------------------------------------------------------------------------
# The chain
# ------------------------------------------------------------------------------------------


def _default_subdivide(ndim: int) -> int:
    return max(1, int(16 ** (1 / ndim) + 1e-9))


class ChainMap:
    """A whole chain as one pull map: ``stages[-1](...stages[0](base(o)))``.

    Parameters
    ----------
    base : AffineMap or ArrayCoordinateMap
        The output grid through the innermost affine run (scipy's arithmetic), or the
        coordinates of a :class:`~transfuse.transforms.nonlinear.CoordinateMap`.
    stages : list
        Applied in order (innermost first): :class:`AffineStage`, :class:`FieldStage`,
        :class:`ExprStage`, :class:`NodeStage`.
    subdivide : int, optional
        Sub-boxes per axis used to bound each output chunk (default: 16 sub-boxes in all,
        e.g. 4 x 4 in 2-D, 2 x 2 x 2 in 3-D).
    """

    form = "chain"
    matrix = None

    def __init__(self, base, stages, subdivide: int | None = None):
        self.base = base
        self.stages = list(stages)
        nd = base.ndim_out if isinstance(base, AffineMap) else len(base.output_shape)
        self.subdivide = _default_subdivide(nd) if subdivide is None else int(subdivide)

    @property
    def ndim_in(self) -> int:
        return self.base.ndim_in

    @property
    def output_chunks(self):
        return getattr(self.base, "output_chunks", None)

    @property
    def token(self) -> tuple:
        return ("chain", self.base.token, *(s.token for s in self.stages))

    @property
    def collections(self) -> tuple:
        return self.base.collections

    def extra_keys(self, block_index) -> list:
        return self.base.extra_keys(block_index)

    @property
    def local(self) -> bool:
        """False when some stage has no bound (the footprint is then the whole input)."""
        return all(getattr(s, "bounded", True) for s in self.stages)

    def coordinates(self, box, *extras) -> np.ndarray:
        """Input coordinates of every point of the output box, ``(ndim_in, *box_shape)``."""
        p = self.base.coordinates(box, *extras)
        stages = self.stages
        if stages and isinstance(stages[0], FieldStage) and isinstance(self.base, AffineMap):
            p = stages[0].apply_affine_fed(p, self.base, box)
            stages = stages[1:]
        for stage in stages:
            p = stage.apply(p)
        # affine and field stages map finite points to finite points; others may not
        checked = any(type(st) in (ExprStage, NodeStage) for st in self.stages)
        if checked and not np.all(np.isfinite(p)):
            raise ValueError(
                f"the fused map {self!r} gives non-finite coordinates in the output box "
                f"{tuple(box)} (e.g. sqrt or log outside its domain, or a division by zero)"
            )
        if p.dtype != np.float64 or not p.flags.writeable or not p.flags.c_contiguous:
            p = np.array(p, dtype=np.float64, order="C")
        return p

    def _sub_boxes(self, boxes):
        nb, nd, _ = boxes.shape
        s = self.subdivide
        per_axis = []
        for a in range(nd):
            start, stop = boxes[:, a, 0], boxes[:, a, 1]
            length = stop - start
            parts = []
            for j in range(s):
                a0 = start + (j * length) // s
                a1 = start + ((j + 1) * length) // s
                a1 = np.maximum(a1, a0 + 1)
                a0 = np.minimum(a0, stop - 1)
                a1 = np.minimum(a1, stop)
                parts.append(np.stack([a0, a1], axis=-1))
            per_axis.append(np.stack(parts, axis=1))  # (nb, s, 2)
        combos = list(itertools.product(range(s), repeat=nd))
        sub = np.empty((nb, len(combos), nd, 2), dtype=np.int64)
        for c, combo in enumerate(combos):
            for a in range(nd):
                sub[:, c, a] = per_axis[a][:, combo[a]]
        return sub.reshape(nb * len(combos), nd, 2), len(combos)

    def ranges(self, boxes) -> np.ndarray:
        """Per box and input axis a sound ``[min, max]`` of the coordinates (see module
        docstring); ``-1e15``/``1e15`` where a stage is unbounded."""
        boxes = np.asarray(boxes, dtype=np.int64)
        nb = boxes.shape[0]
        if isinstance(self.base, AffineMap) and self.subdivide > 1 and nb:
            sub, per = self._sub_boxes(boxes)
        else:
            sub, per = boxes, 1
        r = self.base.ranges(sub)
        lo, hi = r[..., 0], r[..., 1]
        for stage in self.stages:
            lo, hi = stage.bound(lo, hi)
        lo = np.where(np.isnan(lo), -np.inf, lo).reshape(nb, per, -1).min(axis=1)
        hi = np.where(np.isnan(hi), np.inf, hi).reshape(nb, per, -1).max(axis=1)
        out = np.stack([lo, hi], axis=-1)
        return np.clip(out, -_HUGE, _HUGE)

    def describe(self) -> list[str]:
        """The stages from the outermost (applied last) to the base."""
        parts = [s.describe() for s in reversed(self.stages)]
        if isinstance(self.base, AffineMap):
            base = AffineStage(self.base.matrix)
            ident = np.array_equal(self.base.matrix, np.eye(self.base.ndim_in + 1))
            parts.append("grid" if ident else base.describe())
        else:
            parts.append(f"coordinates{tuple(self.base.array.shape)}")
        return parts

    def __repr__(self) -> str:
        return "ChainMap(" + " @ ".join(self.describe()) + ")"


def compile_map(transform: Transform, ndim: int, output_chunks=None):
    """The physical map of a non-affine (fused) transform: one :class:`ChainMap`.

    Runs of affine transforms become single matrices (the innermost run becomes the base,
    evaluated with scipy's arithmetic); every other transform is a stage evaluated at the
    points the stages to its right produce. A lone CoordinateMap gives its
    :class:`ArrayCoordinateMap`.

    Raises
    ------
    ValueError
        If a CoordinateMap is not the rightmost transform, or dimensions disagree.
    """
    parts = list(transform.parts)
    for i, part in enumerate(parts):
        if isinstance(part, CoordinateMap) and i != len(parts) - 1:
            raise ValueError(
                "a CoordinateMap defines the output grid, so it must be the rightmost "
                f"(innermost) transform of a chain; it is at position {i} of "
                f"{' @ '.join(type(p).__name__ for p in parts)}"
            )
        if part.ndim is not None and part.ndim != ndim:
            raise ValueError(f"{type(part).__name__} has ndim={part.ndim}, the image has {ndim}")
    base = None
    if isinstance(parts[-1], CoordinateMap):
        coords = parts[-1].coords
        if output_chunks is not None and isinstance(coords, da.Array):
            coords = coords.rechunk((-1, *output_chunks))
        base = ArrayCoordinateMap(coords, output_chunks)
        parts = parts[:-1]
        if not parts:
            return base
    groups: list = []  # innermost first
    i = len(parts) - 1
    while i >= 0:
        if parts[i].is_affine:
            j = i
            while j > 0 and parts[j - 1].is_affine:
                j -= 1
            run = parts[j : i + 1]
            matrix = run[0].matrix(ndim) if len(run) == 1 else Compose(tuple(run)).matrix(ndim)
            matrix = np.asarray(matrix, dtype=np.float64)
            if not np.all(np.isfinite(matrix)):
                raise ValueError("the composed matrix is not finite")
            groups.append(("affine", matrix))
            i = j - 1
        else:
            groups.append(("node", parts[i]))
            i -= 1
    if base is None:
        if groups[0][0] == "affine":
            base = AffineMap.from_matrix(groups.pop(0)[1])
        else:
            base = AffineMap.from_matrix(np.eye(ndim + 1))
    stages = []
    for kind, item in groups:
        if kind == "affine":
            if not np.array_equal(item, np.eye(ndim + 1)):
                stages.append(AffineStage(item))
        else:
            stages.append(_stage_for(item))
    return ChainMap(base, stages)

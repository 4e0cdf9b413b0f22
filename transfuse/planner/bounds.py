"""Sound ranges of a pass's coordinates over boxes of output points (for footprints).

:class:`MapBounds` bounds a sequence of stages (see :mod:`transfuse.planner.physical`):

* the first stage gives each box's range exactly: affine corners (floating-point rounding is
  monotone, so the extremes of the computed values sit at corners), or a coordinate array's
  per-chunk min/max (computed once);
* each further stage maps a box of points to a box containing its image: affine stages by
  an interval matrix product; displacement fields by ``box + [min u, max u]`` where the
  min/max come from the spline coefficients the box's points can reach (a min/max pyramid:
  B-spline weights are non-negative and sum to one; ``cval`` joins where the mode reads
  it); expressions by interval arithmetic (:mod:`transfuse.planner.interval`); callables by
  their user-given bound, or the whole input;
* boxes of a non-affine chain are split into a few sub-boxes (:attr:`MapBounds.subdivide`
  per axis) whose ranges are united.
"""

from __future__ import annotations

import itertools

import numpy as np

from .interval import EPS, RISK, Unsupported, interval_eval, widen
from .physical import AffineStage, CoordinateArrayStage, FieldStage, FieldWindows

__all__ = ["MapBounds", "MinMaxPyramid", "affine_ranges", "expression_bounder"]

#: Ranges are clipped to this magnitude (far beyond any image: the footprint is the same).
HUGE = 1e15

_FOLDING = ("mirror", "reflect", "wrap", "grid-wrap")


def _corner_points(boxes):
    boxes = np.asarray(boxes)
    return np.stack([boxes[..., 0], boxes[..., 1] - 1], axis=-1).astype(np.float64)


def affine_ranges(stage: AffineStage, boxes) -> np.ndarray:
    """Per box ``[start, stop)`` (shape ``(nboxes, ndim_out, 2)``) and input axis, the min and
    max of the coordinates the stage computes, exactly as it computes them.

    Examples
    --------
    >>> s = AffineStage.from_matrix(np.array([[-1.0, 0, 5], [0, 2, 0], [0, 0, 1]]))
    >>> affine_ranges(s, np.array([[[0, 3], [1, 4]]]))[0]
    array([[3., 5.],
           [2., 6.]])
    """
    if stage.view is not None:  # boxes of the view -> boxes of the stage's own grid
        boxes = stage.view.base_boxes(boxes)
    lo_hi = _corner_points(boxes)
    nb = lo_hi.shape[0]
    out = np.empty((nb, stage.ndim_in, 2))
    if stage.form == "separable":
        for h in range(stage.ndim_in):
            v = lo_hi[:, h, :]
            for kind, vec in stage.ops:
                v = v + vec[h] if kind == "add" else v * vec[h]
            out[:, h, 0], out[:, h, 1] = v.min(axis=1), v.max(axis=1)
        return out
    n_out = stage.linear.shape[1]
    corners = np.array(list(itertools.product((0, 1), repeat=n_out)))
    pts = np.take_along_axis(
        lo_hi[:, None, :, :].repeat(len(corners), axis=1),
        corners[None, :, :, None].repeat(nb, axis=0),
        axis=3,
    )[..., 0]
    for h in range(stage.ndim_in):
        vals = stage.offset[h]
        for l in range(n_out):
            vals = vals + pts[:, :, l] * stage.linear[h, l]
        out[:, h, 0] = vals.min(axis=1)
        out[:, h, 1] = vals.max(axis=1)
    return out


def _affine_bound(stage: AffineStage, lo, hi):
    n = stage.ndim_in
    out_lo = np.empty((lo.shape[0], n))
    out_hi = np.empty_like(out_lo)
    mag = np.zeros_like(out_lo)
    for h in range(n):
        a = np.full(lo.shape[0], stage.offset[h])
        b = a.copy()
        m = np.full(lo.shape[0], abs(stage.offset[h]))
        for l in range(lo.shape[1]):
            w = stage.linear[h, l]
            if w == 0:
                continue
            t1, t2 = lo[:, l] * w, hi[:, l] * w
            a = a + np.minimum(t1, t2)
            b = b + np.maximum(t1, t2)
            m = m + np.maximum(np.abs(t1), np.abs(t2))
        out_lo[:, h], out_hi[:, h], mag[:, h] = a, b, m
    return widen(out_lo, out_hi, mag, ulps=2.0 * (lo.shape[1] + 1))


class MinMaxPyramid:
    """Min and max of an array ``(ncomp, *shape)`` over any box of indices, for many boxes at
    once: level ``L`` holds the min/max over blocks of ``2**L`` samples per axis, and a box
    whose extent is at most ``2**L`` meets at most 2 blocks per axis.

    The result for a box is the min/max over the blocks it meets: it contains the box's
    true min/max (sound) and covers less than four times the box per axis. With ``upper``
    the array holds lower bounds per sample and ``upper`` the upper ones (per-chunk
    min/max tables).

    Examples
    --------
    >>> p = MinMaxPyramid(np.arange(10.0)[None])
    >>> lo, hi = p.query(np.array([[2], [0], [5]]), np.array([[4], [9], [5]]))
    >>> lo.ravel(), hi.ravel()  # boxes 2..4 (blocks 0..7), 0..9, 5..5
    (array([0., 0., 5.]), array([7., 9., 5.]))
    """

    def __init__(self, values: np.ndarray, upper: np.ndarray | None = None):
        lo = np.asarray(values, dtype=np.float64)
        hi = lo if upper is None else np.asarray(upper, dtype=np.float64)
        self.levels = [(lo, hi)]
        while max(lo.shape[1:]) > 1:
            lo, hi = self._halve(lo, np.minimum), self._halve(hi, np.maximum)
            self.levels.append((lo, hi))

    @staticmethod
    def _halve(arr, reduce):
        pad = [(0, 0)] + [(0, n % 2) for n in arr.shape[1:]]
        arr = np.pad(arr, pad, mode="edge")
        for axis in range(1, arr.ndim):
            n = arr.shape[axis]
            if n == 1:
                continue
            idx = [slice(None)] * arr.ndim
            idx[axis] = slice(0, n, 2)
            even = arr[tuple(idx)]
            idx[axis] = slice(1, n, 2)
            arr = reduce(even, arr[tuple(idx)])
        return arr

    def query(self, start: np.ndarray, stop: np.ndarray):
        """Per row, min and max over the index box ``start..stop`` (inclusive, in range).

        Returns two arrays of shape ``(nboxes, ncomp)``.
        """
        nbox, nd = start.shape
        ncomp = self.levels[0][0].shape[0]
        out_lo = np.empty((nbox, ncomp))
        out_hi = np.empty((nbox, ncomp))
        extent = (stop - start + 1).max(axis=1) if nd else np.ones(nbox, dtype=np.int64)
        level = np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64)
        level = np.minimum(level, len(self.levels) - 1)
        for lev in np.unique(level):
            rows = np.flatnonzero(level == lev)
            lo_arr, hi_arr = self.levels[lev]
            bs = start[rows] >> lev
            be = stop[rows] >> lev
            acc_lo = acc_hi = None
            for corner in itertools.product((0, 1), repeat=nd):
                idx = tuple(np.minimum(bs[:, a] + corner[a], be[:, a]) for a in range(nd))
                v_lo = lo_arr[(slice(None), *idx)]
                v_hi = hi_arr[(slice(None), *idx)]
                acc_lo = v_lo if acc_lo is None else np.minimum(acc_lo, v_lo)
                acc_hi = v_hi if acc_hi is None else np.maximum(acc_hi, v_hi)
            out_lo[rows] = acc_lo.T
            out_hi[rows] = acc_hi.T
        return out_lo, out_hi


class FieldBounder:
    """Bounds ``p + u(p)`` over boxes of ``p`` from the field's coefficient pyramid.

    For a chunked field the pyramid is built over per-chunk min/max of the coefficients
    (one reduction, chunk by chunk, at the first call); with the user's
    ``max_displacement`` nothing is read. After each call :attr:`windows` holds, per row,
    the box of (padded) coefficient indices the row's points read, and whether they read
    only ``cval``.
    """

    def __init__(self, stage: FieldStage):
        self.stage = stage
        self._pyramid = None
        self.windows = None
        if stage.max_displacement is None and not stage.chunked:
            self._pyramid = MinMaxPyramid(stage.coefficients)

    def _chunk_pyramid(self):
        coef = self.stage.coefficients
        table = block_ranges(coef)  # (ncomp, *nchunks, 2)
        if not np.all(np.isfinite(table)):
            raise ValueError("field contains NaN or infinite values")
        self._edges = [np.concatenate([[0], np.cumsum(c)]) for c in coef.chunks[1:]]
        return MinMaxPyramid(table[..., 0], table[..., 1])

    def coefficient_range(self) -> tuple[float, float]:
        """The smallest and largest coefficient of a chunked field (reduced once)."""
        if self._pyramid is None:
            self._pyramid = self._chunk_pyramid()
        lo, hi = self._pyramid.levels[-1]
        return float(lo.min()), float(hi.max())

    def _u_range(self, start, stop):
        smp = self.stage
        if smp.max_displacement is not None:
            limit = np.asarray(smp.max_displacement)
            nbox = start.shape[0]
            return np.broadcast_to(-limit, (nbox, limit.size)), np.broadcast_to(
                limit, (nbox, limit.size)
            )
        if smp.chunked:
            if self._pyramid is None:
                self._pyramid = self._chunk_pyramid()
            cs = (
                np.stack(
                    [
                        np.searchsorted(e, start[:, a], side="right") - 1
                        for a, e in enumerate(self._edges)
                    ],
                    axis=1,
                )
                if start.size
                else start
            )
            ce = (
                np.stack(
                    [
                        np.searchsorted(e, stop[:, a], side="right") - 1
                        for a, e in enumerate(self._edges)
                    ],
                    axis=1,
                )
                if stop.size
                else stop
            )
            return self._pyramid.query(cs, ce)
        return self._pyramid.query(start, stop)

    def __call__(self, lo, hi):
        smp = self.stage
        nbox, nd = lo.shape
        k, npad, mode = smp.order, smp.npad, smp.mode
        origin = np.asarray(smp.origin)
        spacing = np.asarray(smp.spacing)
        with np.errstate(invalid="ignore"):
            g_lo = (lo - origin) / spacing
            g_hi = (hi - origin) / spacing
        slack = 4 * EPS * np.maximum(np.abs(g_lo), np.abs(g_hi)) + 1e-300
        slack = np.where(np.isfinite(slack), slack, 0.0)
        g_lo, g_hi = g_lo - slack, g_hi + slack
        start = np.empty((nbox, nd), dtype=np.int64)
        stop = np.empty((nbox, nd), dtype=np.int64)
        has_cval = np.zeros(nbox, dtype=bool)
        all_cval = np.zeros(nbox, dtype=bool)
        for a, n in enumerate(smp.grid_shape):
            ga, gb = g_lo[:, a], g_hi[:, a]
            whole = np.zeros(nbox, dtype=bool)
            if mode == "constant":
                has_cval |= ~((ga >= 0) & (gb <= n - 1))
                all_cval |= (gb < 0) | (ga > n - 1)
                ga, gb = np.clip(ga, 0, n - 1), np.clip(gb, 0, n - 1)
            elif mode in _FOLDING:
                whole |= ~((ga >= 0) & (gb <= n - 1))
                ga, gb = np.clip(ga, 0, n - 1), np.clip(gb, 0, n - 1)
            else:  # nearest, grid-constant: coordinates are not folded
                reach = npad + k + 3
                ga, gb = np.clip(ga, -reach, n - 1 + reach), np.clip(gb, -reach, n - 1 + reach)
            if k % 2:
                t_lo = np.floor(ga).astype(np.int64) - k // 2
                t_hi = np.floor(gb).astype(np.int64) - k // 2 + k
            else:
                t_lo = np.floor(ga + 0.5).astype(np.int64) - k // 2
                t_hi = np.floor(gb + 0.5).astype(np.int64) - k // 2 + k
            t_lo, t_hi = t_lo + npad, t_hi + npad  # indices into the coefficient array
            size = n + 2 * npad
            outside = (t_lo < 0) | (t_hi > size - 1)
            if mode == "grid-constant":
                has_cval |= outside
            elif mode != "nearest":  # taps are mirrored or wrapped: any coefficient
                whole |= outside
            start[:, a] = np.where(whole, 0, np.clip(t_lo, 0, size - 1))
            stop[:, a] = np.where(whole, size - 1, np.clip(t_hi, 0, size - 1))
        self.windows = (start, stop, all_cval)
        u_lo, u_hi = self._u_range(start, stop)
        cval = smp.cval
        u_lo = np.where(has_cval[:, None], np.minimum(u_lo, cval), u_lo)
        u_hi = np.where(has_cval[:, None], np.maximum(u_hi, cval), u_hi)
        u_lo = np.where(all_cval[:, None], cval, u_lo)
        u_hi = np.where(all_cval[:, None], cval, u_hi)
        # B-spline weights sum to 1 up to rounding: a few ulp of the largest coefficient
        # per tap
        taps = (k + 1) ** nd
        w = 2 * taps * EPS * max(smp.max_abs, abs(cval))
        out_lo, out_hi = lo + (u_lo - w), hi + (u_hi + w)
        mag = np.maximum(np.abs(lo), np.abs(hi)) + np.maximum(np.abs(u_lo), np.abs(u_hi))
        return widen(out_lo, out_hi, mag, ulps=2.0)


def expression_bounder(expressions, coords):
    """A bounder ``(lo, hi) -> (lo, hi)`` for expressions of ``coords`` by interval
    arithmetic, or None when some operation has no interval rule."""
    one = (np.zeros(1), np.ones(1))
    try:
        cache: dict = {}
        for e in expressions:
            interval_eval(e, dict.fromkeys(coords, one), cache)
    except Unsupported:
        return None

    def bound(lo, hi):
        env = {c: (lo[:, i], hi[:, i]) for i, c in enumerate(coords)}
        memo: dict = {}
        out_lo = np.empty((lo.shape[0], len(expressions)))
        out_hi = np.empty_like(out_lo)
        for k, e in enumerate(expressions):
            out_lo[:, k], out_hi[:, k] = interval_eval(e, env, memo)
        risk = np.broadcast_to(memo.get(RISK, False), (lo.shape[0],))
        bound.risk = risk | ~np.all(np.isfinite(out_lo) & np.isfinite(out_hi), axis=1)
        return out_lo, out_hi

    bound.risk = None
    return bound


def callable_bounder(bounds):
    """A bounder from ``FunctionMap.bounds``: None (unbounded), margins, or a callable."""
    if bounds is None:
        return None
    if callable(bounds):

        def bound(lo, hi):
            out_lo, out_hi = bounds(lo.copy(), hi.copy())
            out_lo = np.asarray(out_lo, dtype=np.float64)
            out_hi = np.asarray(out_hi, dtype=np.float64)
            if out_lo.shape != lo.shape or out_hi.shape != hi.shape:
                raise ValueError(
                    f"FunctionMap bounds returned shapes {out_lo.shape}, {out_hi.shape}; "
                    f"expected {lo.shape}"
                )
            return out_lo, out_hi

        return bound
    margin = np.asarray(bounds, dtype=np.float64)
    return lambda lo, hi: (lo - margin, hi + margin)


def _unbounded(lo, hi):
    return np.full_like(lo, -np.inf), np.full_like(hi, np.inf)


def _block_min_max(block):
    flat = np.asarray(block).reshape(block.shape[0], -1)
    return np.stack([flat.min(axis=1), flat.max(axis=1)], axis=-1)


def block_ranges(arr) -> np.ndarray:
    """Per chunk of a chunked array ``(ncomp, ...)`` whose first axis is one chunk: the
    min and max of each component, shape ``(ncomp, *nchunks, 2)`` (reduced chunk by chunk,
    through the array's own methods)."""
    return arr.map_blocks(
        lambda b: _block_min_max(b).reshape(b.shape[0], *(1,) * (b.ndim - 1), 2),
        new_axis=arr.ndim,
        chunks=((arr.shape[0],), *((1,) * len(c) for c in arr.chunks[1:]), (2,)),
        dtype=np.float64,
    ).compute()


def coordinate_block_ranges(stage: CoordinateArrayStage) -> np.ndarray:
    """Per output block, per input axis, ``[min, max]`` of a coordinate array (a dask array
    is reduced chunk by chunk, through its own methods)."""
    arr = stage.array
    nblocks = tuple(len(c) for c in stage.output_chunks)
    if hasattr(arr, "map_blocks"):
        table = np.moveaxis(block_ranges(arr), 0, -2)  # (*nblocks, ndim_in, 2)
    else:
        table = np.empty((*nblocks, arr.shape[0], 2))
        bounds = [np.concatenate([[0], np.cumsum(c)]) for c in stage.output_chunks]
        for idx in itertools.product(*(range(n) for n in nblocks)):
            sl = tuple(slice(b[i], b[i + 1]) for b, i in zip(bounds, idx, strict=True))
            table[idx] = _block_min_max(arr[(slice(None), *sl)])
    if not np.all(np.isfinite(table)):
        raise ValueError("coordinates contain NaN or infinite values")
    return table


def _default_subdivide(ndim: int) -> int:
    return max(1, int(16 ** (1 / ndim) + 1e-9))


class MapBounds:
    """Sound ranges of the coordinates a sequence of stages computes.

    Parameters
    ----------
    stages : sequence of stages
        As in a :class:`~transfuse.planner.physical.PhysicalPass`.
    bounders : sequence
        For each stage after the first, a function ``(lo, hi) -> (lo, hi)`` over rows of
        boxes, or None when the stage has no bound (the range is then everything).
    subdivide : int, optional
        Sub-boxes per axis for chains (default: 16 sub-boxes in all).
    """

    def __init__(self, stages, bounders, subdivide: int | None = None):
        self.stages = tuple(stages)
        self.bounders = tuple(bounders)
        first = self.stages[0]
        nd = first.ndim_out if isinstance(first, AffineStage) else len(first.output_chunks)
        self.subdivide = _default_subdivide(nd) if subdivide is None else int(subdivide)
        self._table = None
        #: after :meth:`ranges`: per box, whether an expression may leave its domain there
        self.risk = None
        #: after :meth:`ranges`: ``(stage index, FieldWindows)`` per chunked field stage
        self.field_windows = ()

    @property
    def bounded(self) -> bool:
        """False when some stage has no bound (footprints are then the whole input)."""
        return all(b is not None for b in self.bounders)

    def _first_ranges(self, boxes):
        first = self.stages[0]
        if isinstance(first, AffineStage):
            return affine_ranges(first, boxes)
        if self._table is None:
            self._table = coordinate_block_ranges(first)
        edges = [np.concatenate([[0], np.cumsum(c)]) for c in first.output_chunks]
        out = np.empty((len(boxes), first.ndim_in, 2))
        for b, box in enumerate(np.asarray(boxes)):
            idx = tuple(
                int(np.searchsorted(e, start, side="right") - 1)
                for e, start in zip(edges, box[:, 0], strict=True)
            )
            out[b] = self._table[idx]
        return out

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
        """Per box and input axis a sound ``[min, max]`` of the coordinates; clipped to
        ``±1e15`` (where a stage is unbounded)."""
        boxes = np.asarray(boxes, dtype=np.int64)
        nb = boxes.shape[0]
        chain = len(self.stages) > 1
        if chain and isinstance(self.stages[0], AffineStage) and self.subdivide > 1 and nb:
            sub, per = self._sub_boxes(boxes)
        else:
            sub, per = boxes, 1
        r = self._first_ranges(sub)
        if not chain:
            return r
        lo, hi = r[..., 0], r[..., 1]
        risk = np.zeros(lo.shape[0], dtype=bool)
        windows = []
        for j, bound in enumerate(self.bounders):
            lo, hi = _unbounded(lo, hi) if bound is None else bound(lo, hi)
            if getattr(bound, "risk", None) is not None:
                risk |= bound.risk
            if isinstance(bound, FieldBounder) and bound.stage.chunked:
                windows.append((j + 1, _union_windows(*bound.windows, nb, per)))
        self.field_windows = tuple(windows)
        self.risk = risk.reshape(nb, per).any(axis=1)
        lo = np.where(np.isnan(lo), -np.inf, lo).reshape(nb, per, -1).min(axis=1)
        hi = np.where(np.isnan(hi), np.inf, hi).reshape(nb, per, -1).max(axis=1)
        return np.clip(np.stack([lo, hi], axis=-1), -HUGE, HUGE)


def _union_windows(start, stop, empty, nb, per) -> FieldWindows:
    """The windows of ``per`` consecutive sub-box rows united per box."""
    big = np.iinfo(np.int64).max
    start = np.where(empty[:, None], big, start).reshape(nb, per, -1).min(axis=1)
    stop = np.where(empty[:, None], -1, stop).reshape(nb, per, -1).max(axis=1)
    empty = empty.reshape(nb, per).all(axis=1)
    start = np.where(empty[:, None], 0, start)
    stop = np.where(empty[:, None], 0, stop)
    return FieldWindows(start, stop, empty)


def affine_bounder(stage: AffineStage):
    """The bounder of an affine stage after the first."""
    return lambda lo, hi: _affine_bound(stage, lo, hi)

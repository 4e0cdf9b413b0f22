"""Stages of a fused chain (:class:`~transfuse.planner.maps.ChainMap`): each maps points
and bounds boxes of points (fused affine matrices, displacement fields, expressions,
callables)."""

from __future__ import annotations

import itertools
import weakref

import numpy as np

from ..transforms.nonlinear import DisplacementField, ExprMap, FunctionMap, NonlinearTransform
from .coords import AffineMap
from .interval import EPS, Unsupported, interval_eval, widen

__all__ = [
    "AffineStage",
    "ExprStage",
    "FieldStage",
    "MinMaxPyramid",
    "NodeStage",
]


class AffineStage:
    """``c = linear @ p + offset`` (a fused run of affine transforms)."""

    def __init__(self, matrix: np.ndarray):
        n = matrix.shape[0] - 1
        self.linear = np.ascontiguousarray(matrix[:n, :n], dtype=np.float64)
        self.offset = np.ascontiguousarray(matrix[:n, n], dtype=np.float64)

    @property
    def token(self):
        return ("affine", self.linear.tobytes(), self.offset.tobytes())

    def apply(self, p: np.ndarray) -> np.ndarray:
        n_in, n_out = self.linear.shape
        out = np.empty((n_in, *p.shape[1:]))
        tmp = np.empty(p.shape[1:])
        for h in range(n_in):
            acc = out[h]
            np.multiply(p[0], self.linear[h, 0], out=acc)
            for l in range(1, n_out):
                np.multiply(p[l], self.linear[h, l], out=tmp)
                acc += tmp
            acc += self.offset[h]
        return out

    def bound(self, lo, hi):
        n = self.linear.shape[0]
        out_lo = np.empty((lo.shape[0], n))
        out_hi = np.empty_like(out_lo)
        mag = np.zeros_like(out_lo)
        for h in range(n):
            a = np.full(lo.shape[0], self.offset[h])
            b = a.copy()
            m = np.full(lo.shape[0], abs(self.offset[h]))
            for l in range(lo.shape[1]):
                w = self.linear[h, l]
                if w == 0:
                    continue
                t1, t2 = lo[:, l] * w, hi[:, l] * w
                a = a + np.minimum(t1, t2)
                b = b + np.maximum(t1, t2)
                m = m + np.maximum(np.abs(t1), np.abs(t2))
            out_lo[:, h], out_hi[:, h], mag[:, h] = a, b, m
        return widen(out_lo, out_hi, mag, ulps=2.0 * (lo.shape[1] + 1))

    def describe(self) -> str:
        rows = [
            "[" + ", ".join(f"{v:.4g}" for v in (*row, off)) + "]"
            for row, off in zip(self.linear, self.offset, strict=True)
        ]
        return "affine[" + ", ".join(rows) + "]"


class MinMaxPyramid:
    """Min and max of an array ``(ncomp, *shape)`` over any box of indices, for many boxes at
    once: level ``L`` holds the min/max over blocks of ``2**L`` samples per axis, and a box
    whose extent is at most ``2**L`` meets at most 2 blocks per axis.

    The result for a box is the min/max over the blocks it meets: it contains the box's
    true min/max (sound) and covers less than four times the box per axis.

    Examples
    --------
    >>> p = MinMaxPyramid(np.arange(10.0)[None])
    >>> lo, hi = p.query(np.array([[2], [0], [5]]), np.array([[4], [9], [5]]))
    >>> lo.ravel(), hi.ravel()  # boxes 2..4 (blocks 0..7), 0..9, 5..5
    (array([0., 0., 5.]), array([7., 9., 5.]))
    """

    def __init__(self, values: np.ndarray):
        self.shape = values.shape[1:]
        lo = hi = np.asarray(values, dtype=np.float64)
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


_PYRAMIDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_FOLDING = ("mirror", "reflect", "wrap", "grid-wrap")


class NodeStage:
    """A non-linear node evaluated with its ``apply``; unbounded unless a subclass knows
    better (``FunctionMap`` with ``bounds``)."""

    kind = "node"

    def __init__(self, node: NonlinearTransform):
        self.node = node

    @property
    def token(self):
        return (self.kind, type(self.node).__name__, self.node.key)

    @property
    def bounded(self) -> bool:
        return isinstance(self.node, FunctionMap) and self.node.bounds is not None

    def apply(self, p):
        return self.node.apply(p)

    def bound(self, lo, hi):
        if isinstance(self.node, FunctionMap):
            return self.node.bound_boxes(lo, hi)
        return np.full_like(lo, -np.inf), np.full_like(hi, np.inf)

    def describe(self) -> str:
        text = repr(self.node)
        return text if self.bounded else f"{text} [footprint: whole input]"


class FieldStage(NodeStage):
    """A displacement field, sampled at the points the stages before it produce."""

    kind = "field"

    def __init__(self, node: DisplacementField):
        super().__init__(node)
        self.sampler = node.sampler  # materialises a dask field (NaN check) at plan time
        if self.sampler not in _PYRAMIDS:
            _PYRAMIDS[self.sampler] = MinMaxPyramid(self.sampler.coefficients)
        self.pyramid = _PYRAMIDS[self.sampler]
        coef = self.sampler.coefficients
        self.max_abs = float(np.abs(coef).max()) if coef.size else 0.0

    bounded = True

    def apply_affine_fed(self, p: np.ndarray, base: AffineMap, box) -> np.ndarray:
        """``p + u(p)`` where ``p = base(o)`` for the indices ``o`` of ``box``: ``u`` comes
        from :func:`scipy.ndimage.affine_transform` of the coefficients with the matrix
        ``(base - origin) / spacing``, not from a coordinate array (faster)."""
        node = self.node
        inv = 1.0 / np.asarray(node.spacing)
        start = np.array([a for a, _ in box], dtype=np.float64)
        matrix = base.linear * inv[:, None]
        offset = (base.offset + base.linear @ start - np.asarray(node.origin)) * inv
        u = self.sampler.sample_affine(matrix, offset, tuple(b - a for a, b in box))
        u += p
        return u

    def bound(self, lo, hi):
        node, smp = self.node, self.sampler
        nbox, nd = lo.shape
        k, npad, mode = smp.order, smp.npad, smp.mode
        origin = np.asarray(node.origin)
        spacing = np.asarray(node.spacing)
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
        u_lo, u_hi = self.pyramid.query(start, stop)
        cval = smp.cval
        u_lo = np.where(has_cval[:, None], np.minimum(u_lo, cval), u_lo)
        u_hi = np.where(has_cval[:, None], np.maximum(u_hi, cval), u_hi)
        u_lo = np.where(all_cval[:, None], cval, u_lo)
        u_hi = np.where(all_cval[:, None], cval, u_hi)
        # B-spline weights sum to 1 up to rounding: a few ulp of the largest coefficient
        # per tap
        taps = (k + 1) ** nd
        w = 2 * taps * EPS * max(self.max_abs, abs(cval))
        out_lo, out_hi = lo + (u_lo - w), hi + (u_hi + w)
        mag = np.maximum(np.abs(lo), np.abs(hi)) + np.maximum(np.abs(u_lo), np.abs(u_hi))
        return widen(out_lo, out_hi, mag, ulps=2.0)

    def describe(self) -> str:
        node = self.node
        grid = "x".join(str(n) for n in node.grid_shape)
        sp = ", ".join(f"{v:g}" for v in node.spacing)
        org = ", ".join(f"{v:g}" for v in node.origin)
        return (
            f"field(grid {grid}, spacing ({sp}), origin ({org}), order={node.order}, "
            f"mode={node.mode}, |u| <= {max(self.max_abs, abs(node.cval)):.3g})"
        )


class ExprStage(NodeStage):
    """Expressions compiled with lambdify; bounded by interval arithmetic."""

    kind = "expr"

    def __init__(self, node: ExprMap):
        super().__init__(node)
        self.function = node._c_function  # compiled once (raises for unbound symbols)
        try:
            _validate_intervals(node.expressions, node.coords)
            self._bounded = True
        except Unsupported:
            self._bounded = False

    @property
    def bounded(self):
        return self._bounded

    def __getstate__(self):  # the compiled function is rebuilt after unpickling
        return {k: v for k, v in self.__dict__.items() if k != "function"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.function = self.node._c_function

    def apply(self, p):
        return np.stack(self.function(*p))

    def bound(self, lo, hi):
        node = self.node
        if not self._bounded:
            return np.full_like(lo, -np.inf), np.full_like(hi, np.inf)
        env = {c: (lo[:, i], hi[:, i]) for i, c in enumerate(node.coords)}
        cache: dict = {}
        out_lo = np.empty((lo.shape[0], len(node.expressions)))
        out_hi = np.empty_like(out_lo)
        for k, e in enumerate(node.expressions):
            a, b = interval_eval(e, env, cache)
            out_lo[:, k], out_hi[:, k] = a, b
        return out_lo, out_hi

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.node.coords)
        body = ", ".join(str(e) for e in self.node.expressions)
        tail = "" if self._bounded else " [footprint: whole input]"
        return f"expr(({names}) -> ({body})){tail}"


def _validate_intervals(exprs, coords):
    one = (np.zeros(1), np.ones(1))
    env = dict.fromkeys(coords, one)
    cache: dict = {}
    for e in exprs:
        interval_eval(e, env, cache)


def _stage_for(node) -> NodeStage:
    if isinstance(node, DisplacementField):
        return FieldStage(node)
    if isinstance(node, ExprMap):
        return ExprStage(node)
    if isinstance(node, NonlinearTransform) and type(node).apply is not NonlinearTransform.apply:
        return NodeStage(node)
    raise NotImplementedError(f"{type(node).__name__} cannot be part of a fused chain")

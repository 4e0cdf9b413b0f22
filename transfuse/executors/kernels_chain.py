"""A chain of stages (affine @ displacement field @ expression ...) evaluated in compiled
code, block by block, and interpolated by the kernel of :mod:`.kernels_interp`: no
coordinate array of the chunk is ever built.

The output box is walked in blocks of at most :data:`BLOCK` points (C order). For each
block the stages run one after the other on a small reused buffer of coordinates
(``3 x BLOCK`` float64, about 200 kB: it stays in cache), each stage one compiled call
that releases the GIL, and the interpolation kernel then reads the block's coordinates
(its coordinate-array form). Memory per task is bounded by the block, whatever the chunk.

Every stage does the floating-point operations of the reference evaluation
(:mod:`.stages`) in the same order, so the coordinates are the reference's bit for bit:

* the first affine stage: scipy's arithmetic (``offset`` first, then each grid axis
  left to right; the separable zoom/shift operations; a lazy view of the grid);
* a later affine stage: ``linear[h, 0] * p[0] + ... + offset[h]`` as
  :func:`~.stages.affine_points` adds it;
* a displacement field: ``(p - origin) / spacing`` (plus the pre-padding, minus the
  window's start), sampled from the coefficients with scipy's mode rule, weights and
  tap-by-tap sum (:func:`~.kernels_interp._rule`, :func:`~.kernels_interp._weights`, the
  tap tables of :mod:`.kernel_ndi`), then added; right after a matrix affine first stage
  the field is sampled as :func:`~.stages._field_after_affine` does (an affine map of the
  local output index);
* an expression: the stage's generated numpy source, checked by the same AST rule as the
  reference and only then compiled by numba (:mod:`.kernels_expr`), cached on disk
  under the hash of its text (constants are arguments: a new value compiles
  nothing). numba's ``sin``, ``exp``, ``pow`` ... are the C library's, numpy's vectorised
  ones may differ by an ulp: there the result is within 1e-10, not bit-exact;
* a coordinate array (first stage): read block by block.

Where a block meets something the reference must decide — a non-finite coordinate, a
displacement beyond ``max_displacement``, a point the kernel hands back — the chunk is
handed back (None) and the reference path computes it (and raises the same error).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..planner.physical import AffineStage, CoordinateArrayStage, ExprStage, FieldStage
from . import kernel_ndi, numba_loader
from . import kernel_rules as rules
from . import kernels_interp as K
from .kernels_expr import compiled_expression, expression_cache_dir

__all__ = [
    "AVAILABLE",
    "BLOCK",
    "ChainProgram",
    "compiled_expression",
    "describe",
    "expression_cache_dir",
    "program",
    "reason",
]

AVAILABLE = K.AVAILABLE

#: Points per block (the coordinate buffer is 3 x BLOCK float64).
BLOCK = 8192

#: Most axes any stage of the chain may take or give.
MAX_NDIM = 3


# -- compiled stage kernels --------------------------------------------------------------------


def _first_affine(form, lin, off, opk, opv, gsrc, gstart, gstep, n_in, start, shape, lo, p):
    """Coordinates of the points ``lo ... lo + m - 1`` (C order over the 3-D box ``shape``
    at ``start``) through the first stage, into rows ``0 .. n_in - 1`` of ``p`` (3, m).

    Grid axis ``a`` (3 of them, unused ones fixed at 0) reads ``gstart[a] + gstep[a] *
    o[gsrc[a]]`` of the global output index ``o``; ``form`` 0: ``off[h] + g[0] * lin[h, 0]
    + ...`` left to right over the grid axes ``a`` with ``gsrc[a] != -2``; 1: the
    separable operations ``opk``/``opv`` (0 add, 1 multiply) on ``g[h]``."""
    m = p.shape[1]
    s1, s2 = shape[1], shape[2]
    nops = opk.shape[0]
    i0 = lo // (s1 * s2)
    i1 = (lo % (s1 * s2)) // s2
    i2 = lo % s2
    use0, use1, use2 = gsrc[0] != -2, gsrc[1] != -2, gsrc[2] != -2
    for t in range(m):
        o0 = start[0] + i0
        o1 = start[1] + i1
        o2 = start[2] + i2
        g0 = _grid_index(gsrc[0], gstart[0], gstep[0], o0, o1, o2)
        g1 = _grid_index(gsrc[1], gstart[1], gstep[1], o0, o1, o2)
        g2 = _grid_index(gsrc[2], gstart[2], gstep[2], o0, o1, o2)
        if form == 0:
            for h in range(n_in):
                acc = off[h]
                if use0:
                    acc = acc + g0 * lin[h, 0]
                if use1:
                    acc = acc + g1 * lin[h, 1]
                if use2:
                    acc = acc + g2 * lin[h, 2]
                p[h, t] = acc
        else:
            for h in range(n_in):
                c = g0 if h == 0 else (g1 if h == 1 else g2)
                for q in range(nops):
                    if opk[q] == 0:
                        c = c + opv[q, h]
                    else:
                        c = c * opv[q, h]
                p[h, t] = c
        i2 += 1
        if i2 == s2:
            i2 = 0
            i1 += 1
            if i1 == s1:
                i1 = 0
                i0 += 1


def _affine_points(lin, off, n_in, n_out, p):
    """``p <- linear @ p + offset`` in place, as :func:`~.stages.affine_points` adds it:
    ``p[0] * lin[h, 0]``, then each further term, then the offset."""
    m = p.shape[1]
    for t in range(m):
        x0 = p[0, t]
        x1 = p[1, t] if n_out > 1 else 0.0
        x2 = p[2, t] if n_out > 2 else 0.0
        r0 = r1 = r2 = 0.0
        for h in range(n_in):
            acc = x0 * lin[h, 0]
            if n_out > 1:
                acc += x1 * lin[h, 1]
            if n_out > 2:
                acc += x2 * lin[h, 2]
            acc += off[h]
            if h == 0:
                r0 = acc
            elif h == 1:
                r1 = acc
            else:
                r2 = acc
        p[0, t] = r0
        if n_in > 1:
            p[1, t] = r1
        if n_in > 2:
            p[2, t] = r2


def _sample(coef, cstride, ncomp, tables, tlo, tlen, shape, kind, mode, order, cval, c, u, pos, w):
    """The field's components at coefficient coordinates ``c`` (3, padded) into ``u``:
    scipy's ``map_coordinates(prefilter=False)`` — the mode rule, the weights and the sum
    over taps in scipy's order (``t += v * w0 * w1 * w2``). Returns 0, or 3 where the
    point must go to the reference path."""
    reach = order + 2.0
    for h in range(3):
        q, cc, first = K._rule(c[h], shape[h], kind[h], mode, order, 0.0, reach)
        if q == 2:
            for k in range(ncomp):
                u[k] = cval
            return 0
        if q == 3:
            return 3
        mh = 1 if kind[h] == 0 else order + 1
        i = first - tlo[h]
        if i < 0 or i > tlen[h] - mh:
            return 3
        for a in range(6):
            if a < mh:
                pos[h, a] = tables[h, i + a]
                if pos[h, a] == K.TAP_MISSING:
                    return 3
            else:
                pos[h, a] = 0
        if mh > 1 and order > 0:
            w[h, 0], w[h, 1], w[h, 2], w[h, 3], w[h, 4], w[h, 5] = K._weights(cc, order)
        else:
            w[h, 0] = 1.0
    m0 = 1 if kind[0] == 0 else order + 1
    m1 = 1 if kind[1] == 0 else order + 1
    m2 = 1 if kind[2] == 0 else order + 1
    anycval = False
    for h in range(3):
        for a in range(6):
            anycval |= pos[h, a] < 0
    # the components share taps and weights: summed together (independent additions),
    # each still tap by tap in scipy's order; unused components read component 0. (An
    # unrolled 4x4x4 path measured no faster and cost 3 s more compile.)
    b0 = 0
    b1 = cstride if ncomp > 1 else 0
    b2 = 2 * cstride if ncomp > 2 else 0
    t0 = t1 = t2 = 0.0
    if not anycval:
        for a in range(m0):
            pa = pos[0, a]
            wa = w[0, a]
            for b in range(m1):
                q = pa + pos[1, b]
                wb = w[1, b]
                for d in range(m2):
                    r = q + pos[2, d]
                    wd = w[2, d]
                    t0 += coef[b0 + r] * wa * wb * wd
                    t1 += coef[b1 + r] * wa * wb * wd
                    t2 += coef[b2 + r] * wa * wb * wd
    else:
        for a in range(m0):
            wa = w[0, a]
            for b in range(m1):
                wb = w[1, b]
                for d in range(m2):
                    wd = w[2, d]
                    p0, p1, p2 = pos[0, a], pos[1, b], pos[2, d]
                    if p0 < 0 or p1 < 0 or p2 < 0:
                        t0 += cval * wa * wb * wd
                        t1 += cval * wa * wb * wd
                        t2 += cval * wa * wb * wd
                    else:
                        r = p0 + p1 + p2
                        t0 += coef[b0 + r] * wa * wb * wd
                        t1 += coef[b1 + r] * wa * wb * wd
                        t2 += coef[b2 + r] * wa * wb * wd
    u[0] = t0
    u[1] = t1
    u[2] = t2
    return 0


def _field_block(head, where, limit, after, lo, p):
    """``p <- p + u(c)`` in place for a displacement field (rows ``0 .. ndim - 1``; the
    field's grid axes sit last among the 3 padded ones), ``c`` its coefficient
    coordinates. ``after`` 0: ``c = (p - origin) / spacing + npad - shift`` as
    :func:`~.stages.sample_field` computes it; 1 (right after a matrix affine first stage):
    ``c = moff[h] + j[0] * mat[h, 0] + ...`` of the local output index ``j`` (the box's
    last ``n_out`` axes), as :func:`~.stages._field_after_affine` has scipy's
    ``affine_transform`` compute it, and then ``p <- u + p``. Returns 0, or 1 where a
    point needs the reference path, 2 where a displacement breaks ``limit`` (negative
    entries: no limit)."""
    coef, cstride, ncomp, tables, tlo, tlen, shape, kind, mode, order, cval, ndim = head
    origin, spacing, npad, shift, mat, moff, n_out, bshape = where
    m = p.shape[1]
    lead = 3 - ndim
    olead = 3 - n_out
    c = np.zeros(3)
    u = np.zeros(3)
    j = np.zeros(3)
    pos = np.zeros((3, 6), dtype=np.int64)
    w = np.zeros((3, 6))
    padf = float(npad)
    s1, s2 = bshape[1], bshape[2]
    i0 = lo // (s1 * s2)
    i1 = (lo % (s1 * s2)) // s2
    i2 = lo % s2
    for t in range(m):
        if after == 0:
            for a in range(ndim):
                g = (p[a, t] - origin[a]) / spacing[a]
                if npad != 0:
                    g = g + padf
                c[lead + a] = g - shift[a]
        else:
            j[0] = float(i0)
            j[1] = float(i1)
            j[2] = float(i2)
            for a in range(ndim):
                acc = moff[a]
                for q in range(n_out):
                    acc = acc + j[olead + q] * mat[a, q]
                c[lead + a] = acc
        code = _sample(
            coef, cstride, ncomp, tables, tlo, tlen, shape, kind, mode, order, cval, c, u, pos, w
        )
        if code != 0:
            return 1
        for k in range(ncomp):
            if limit[k] >= 0.0 and not abs(u[k]) <= limit[k]:
                return 2
            if after == 0:
                p[k, t] = p[k, t] + u[k]
            else:
                p[k, t] = u[k] + p[k, t]
        i2 += 1
        if i2 == s2:
            i2 = 0
            i1 += 1
            if i1 == s1:
                i1 = 0
                i0 += 1
    return 0


# the grid index of an output point (kernel_rules.pick), compiled by :func:`_jit_helpers`
_grid_index = rules.pick


@functools.cache
def _jit_helpers() -> None:
    """Compile the helpers the stage kernels inline (kernels_interp's too), once."""
    global _sample, _grid_index
    K._jit_helpers()
    _sample = K._jit(_sample, inline="always")
    _grid_index = K._pick


def _deferred(func):
    """``func``'s dispatcher, made (numba imported, compiled or loaded from the disk
    cache) at its first call."""

    def register():
        _jit_helpers()
        return K._jit(func, nogil=True, boundscheck=False)

    return numba_loader.DeferredKernel(register)


_FIRST_AFFINE = _deferred(_first_affine)
_AFFINE_POINTS = _deferred(_affine_points)
_FIELD_BLOCK = _deferred(_field_block)


# -- a chain, packed ----------------------------------------------------------------------------


def reason(stages) -> str | None:
    """Why this module cannot evaluate ``stages`` (None when it can)."""
    if not AVAILABLE:
        return "numba is not installed"
    first = stages[0]
    if not isinstance(first, AffineStage | CoordinateArrayStage):
        return f"a chain starting with a {type(first).__name__}"
    if isinstance(first, AffineStage):
        if first.linear.shape[1] > MAX_NDIM or first.ndim_out > MAX_NDIM:
            return "more than 3 output axes"
        if first.ndim_in > MAX_NDIM:
            return "more than 3 axes between stages"
    for stage in stages[1:]:
        if isinstance(stage, AffineStage):
            if max(stage.linear.shape) > MAX_NDIM:
                return "more than 3 axes between stages"
        elif isinstance(stage, FieldStage):
            if stage.ndim_in > MAX_NDIM:
                return "a field of more than 3 axes"
        elif isinstance(stage, ExprStage):
            if max(stage.ndim_in, stage.ndim_out) > MAX_NDIM:
                return "more than 3 axes between stages"
            if compiled_expression(stage) is None:
                return "an expression numba cannot compile"
        else:
            return f"a {type(stage).__name__}"
    return None


def describe(stages) -> str:
    """In words, how the chain's coordinates are computed."""
    why = reason(stages)
    if why is None:
        return (
            f"chain of {len(stages)} stages (coordinates computed block by block by "
            f"compiled stages, {BLOCK} points at a time, no coordinate array)"
        )
    return (
        f"chain of {len(stages)} stages (coordinates per chunk by numpy, fields sampled by "
        f"the compiled kernel: {why})"
    )


@functools.lru_cache(maxsize=512)
def _field_tables(shape, strides, mode, order):
    """The field's tap tables padded to ``(3, width)`` with their starts and lengths."""
    tables, starts = kernel_ndi._tables(shape, strides, mode, order)
    width = max(len(t) for t in tables)
    tab = np.full((3, width), K.TAP_MISSING, dtype=np.int64)
    for h, t in enumerate(tables):
        tab[h, : len(t)] = t
    tlen = np.array([len(t) for t in tables], dtype=np.int64)
    tlo = np.array(starts, dtype=np.int64)
    for a in (tab, tlen, tlo):
        a.setflags(write=False)
    return tab, tlo, tlen


def _field_args(stage: FieldStage):
    """The compiled sampler's view of a field stage's coefficients."""
    coefficients = stage.coefficients
    if not isinstance(coefficients, np.ndarray):
        coefficients = np.asarray(coefficients)
    if coefficients.dtype != np.float64:  # exact: scipy reads every sample as a double
        coefficients = coefficients.astype(np.float64)
    buf, strides = K.flat_buffer(coefficients)
    grid = coefficients.shape[1:]
    mode = {"grid-mirror": "reflect"}.get(stage.mode, stage.mode)
    tab, tlo, tlen = _field_tables(tuple(grid), tuple(strides[1:]), mode, int(stage.order))
    ndim = len(grid)
    shape = np.ones(3, dtype=np.int64)
    shape[3 - ndim :] = grid
    kind = np.zeros(3, dtype=np.int64)
    kind[3 - ndim :] = 1
    ncomp = coefficients.shape[0]
    limit = np.full(3, -1.0)
    if stage.max_displacement is not None:
        limit[: len(stage.max_displacement)] = stage.max_displacement
    head = (buf, int(strides[0]), int(ncomp), tab, tlo, tlen, shape, kind)
    tail = (K.MODE_CODES[mode], int(stage.order), float(stage.cval), ndim)
    return head + tail, limit


def _field_matrix(stage: FieldStage, base: AffineStage, box):
    """The matrix and offset :func:`~.stages._field_after_affine` hands scipy, computed
    with the same numpy operations."""
    inv = 1.0 / np.asarray(stage.spacing)
    start = np.array([a for a, _ in box], dtype=np.float64)
    matrix = base.linear * inv[:, None]
    offset = (base.offset + base.linear @ start - np.asarray(stage.origin)) * inv
    if stage.npad:
        offset = offset + stage.npad
    if stage.start is not None and any(stage.start):
        offset = offset - np.asarray(stage.start, dtype=np.float64)
    return np.ascontiguousarray(matrix), np.ascontiguousarray(offset)


@dataclasses.dataclass(eq=False)
class ChainProgram:
    """One task's chain, packed for the compiled stages: ``steps`` are ``(kind, args)``
    run in order on each block."""

    steps: list
    n_in: int
    start: np.ndarray
    shape: np.ndarray
    npoints: int

    def coordinates(self, lo: int, p: np.ndarray) -> bool:
        """The coordinates of points ``lo ...`` into ``p`` (3, m); False where the chunk
        must go to the reference path."""
        for kind, args in self.steps:
            if kind == "first":
                _FIRST_AFFINE(*args, self.start, self.shape, lo, p)
            elif kind == "array":
                arr = args
                p[: arr.shape[0]] = arr[:, lo : lo + p.shape[1]]
            elif kind == "affine":
                _AFFINE_POINTS(*args, p)
            elif kind == "field":
                head, where, limit, after = args
                if _FIELD_BLOCK(head, where, limit, after, lo, p) != 0:
                    return False
            else:  # expression
                func, constants = args
                if func(p, constants) != 0:
                    return False
        return True

    def interpolate(self, interp_args, coords_spec, out, packed=None) -> bool:
        """Every block: coordinates, then the kernel (``interp_args``: its arguments up to
        ``cval``; ``coords_spec(coords)`` its coordinate form; ``packed`` its tables packed
        once for every block, :func:`.kernels_interp.pack_tables`). False: use the
        reference."""
        flat_out = out.reshape(-1)
        buf = np.empty(3 * min(BLOCK, max(self.npoints, 1)))
        zeros = [0, 0, 0]
        for lo in range(0, self.npoints, BLOCK):
            m = min(BLOCK, self.npoints - lo)
            p = buf[: 3 * m].reshape(3, m)
            if not self.coordinates(lo, p):
                return False
            ok = K.interpolate(
                *interp_args,
                coords_spec(p.reshape(3, 1, 1, m)),
                zeros,
                flat_out[lo : lo + m].reshape(1, 1, m),
                packed=packed,
            )
            if not ok:
                return False
        return True


def _first_args(first: AffineStage, n_box: int):
    n_grid = first.linear.shape[1]
    glead = 3 - n_grid
    olead = 3 - n_box
    lin = np.zeros((3, 3))
    lin[: first.ndim_in, glead:] = first.linear
    gsrc = np.full(3, -2, dtype=np.int64)  # -2: a padding axis (no term)
    gstart = np.zeros(3, dtype=np.int64)
    gstep = np.zeros(3, dtype=np.int64)
    if first.view is None:
        for a in range(n_grid):
            gsrc[glead + a] = olead + a
            gstep[glead + a] = 1
    else:
        for a, (j, start, step) in enumerate(first.view.axes):
            gsrc[glead + a] = -1 if j is None else olead + j
            gstart[glead + a] = int(start)
            gstep[glead + a] = int(step)
    off = np.zeros(3)
    off[: first.ndim_in] = first.offset
    if first.form == "matrix":
        return (
            0,
            lin,
            off,
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 3)),
            gsrc,
            gstart,
            gstep,
            first.ndim_in,
        )
    # separable: axis h reads grid axis h (square, no view across ranks)
    opk = np.array([0 if kind == "add" else 1 for kind, _ in first.ops], dtype=np.int64)
    opv = np.zeros((len(first.ops), 3))
    for q, (_, vec) in enumerate(first.ops):
        opv[q, : len(vec)] = vec
    # the separable form reads g[h] for output row h: grid axes must not be padded
    gsrc2 = np.full(3, -1, dtype=np.int64)
    gstart2 = np.zeros(3, dtype=np.int64)
    gstep2 = np.zeros(3, dtype=np.int64)
    gsrc2[:n_grid] = gsrc[glead:]
    gstart2[:n_grid] = gstart[glead:]
    gstep2[:n_grid] = gstep[glead:]
    return (1, lin, off, opk, opv, gsrc2, gstart2, gstep2, first.ndim_in)


def program(stages, box) -> ChainProgram | None:
    """``stages`` packed for the output ``box`` of one task, or None where this module
    does not evaluate them (:func:`reason`)."""
    if reason(stages) is not None:
        return None
    first, rest = stages[0], list(stages[1:])
    n_box = len(box)
    box3 = [(0, 1)] * (3 - n_box) + list(box)
    start = np.array([a for a, _ in box3], dtype=np.int64)
    shape = np.array([b - a for a, b in box3], dtype=np.int64)
    npoints = int(np.prod(shape))
    steps = []
    if isinstance(first, CoordinateArrayStage):
        if first.array is None:
            return None
        arr = np.ascontiguousarray(first.array, dtype=np.float64).reshape(first.ndim_in, -1)
        steps.append(("array", arr))
        n_in = first.ndim_in
    else:
        steps.append(("first", _first_args(first, n_box)))
        n_in = first.ndim_in
        if rest and isinstance(rest[0], FieldStage) and first.form == "matrix" and not first.view:
            field = rest.pop(0)
            head, limit = _field_args(field)
            mat, moff = _field_matrix(field, first, box)
            mat3 = np.zeros((3, 3))
            mat3[: mat.shape[0], : mat.shape[1]] = mat
            moff3 = np.zeros(3)
            moff3[: moff.shape[0]] = moff
            where = (np.zeros(3), np.ones(3), 0, np.zeros(3), mat3, moff3, n_box, shape)
            steps.append(("field", (head, where, limit, 1)))
    for stage in rest:
        if isinstance(stage, AffineStage):
            lin = np.zeros((3, 3))
            lin[: stage.linear.shape[0], : stage.linear.shape[1]] = stage.linear
            off = np.zeros(3)
            off[: stage.ndim_in] = stage.offset
            steps.append(("affine", (lin, off, stage.linear.shape[0], stage.linear.shape[1])))
            n_in = stage.linear.shape[0]
        elif isinstance(stage, FieldStage):
            head, limit = _field_args(stage)
            origin = np.zeros(3)
            origin[: stage.ndim_in] = stage.origin
            spacing = np.ones(3)
            spacing[: stage.ndim_in] = stage.spacing
            shift = np.zeros(3)
            if stage.start is not None:
                shift[: len(stage.start)] = stage.start
            where = (
                origin,
                spacing,
                int(stage.npad),
                shift,
                np.zeros((3, 3)),
                np.zeros(3),
                3,
                shape,
            )
            steps.append(("field", (head, where, limit, 0)))
        else:
            func = compiled_expression(stage)
            steps.append(("expr", (func, np.array(stage.constants, dtype=np.float64))))
            n_in = stage.ndim_in
    return ChainProgram(steps, n_in, start, shape, npoints)

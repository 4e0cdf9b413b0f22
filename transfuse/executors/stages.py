"""Evaluating the stages of a physical plan with numpy (shared by the CPU backends).

:func:`coordinates` computes the input coordinates of every point of an output box,
``(ndim_in, *box_shape)``; the first affine stage uses exactly scipy.ndimage's arithmetic
so that chunked results match it bit for bit. Displacement fields are interpolated with an
``ndimage``-like module given by the backend (scipy.ndimage here).
"""

from __future__ import annotations

import ast
import functools
import warnings

import numpy as np
import scipy

from ..planner.physical import (
    AffineStage,
    CallableStage,
    CoordinateArrayStage,
    ExprStage,
    FieldStage,
    NewtonStage,
)

__all__ = ["compile_expression", "coordinates", "sample_field"]


# -- affine ------------------------------------------------------------------------------------


def _grid_axes(stage: AffineStage, box):
    """Per axis of the stage's grid, its indices over ``box`` (float64, shaped to broadcast
    over the box's axes; a scalar for an axis a view fixes), and the box's shape."""
    shape = tuple(b - a for a, b in box)
    if stage.view is None:
        out = []
        for h, (a, b) in enumerate(box):
            view = [1] * len(box)
            view[h] = b - a
            out.append(np.arange(a, b, dtype=np.float64).reshape(view))
        return out, shape
    out = []
    for j, start, step in stage.view.axes:
        if j is None:
            out.append(np.float64(start))
            continue
        a, b = box[j]
        view = [1] * len(box)
        view[j] = b - a
        idx = start + step * np.arange(a, b, dtype=np.int64)  # exact integers
        out.append(idx.astype(np.float64).reshape(view))
    return out, shape


def affine_grid(stage: AffineStage, box) -> np.ndarray:
    """Coordinates of the output box ``((start, stop), ...)`` through the first stage (a
    view of the stage's grid reads its integer indices first: values are exactly those of
    the whole grid at the selected points)."""
    grids, shape = _grid_axes(stage, box)
    out = np.empty((stage.ndim_in, *shape))
    if stage.form == "separable":
        for h, g in enumerate(grids):
            c = g
            for kind, vec in stage.ops:
                c = c + vec[h] if kind == "add" else c * vec[h]
            out[h] = c
        return out
    # scipy: c[h] = offset[h] + o[0] * M[h, 0] + o[1] * M[h, 1] + ... (left to right).
    # Adding broadcast terms in that order gives the same float operations on fewer
    # elements; only the last addition is full size.
    n_out = len(grids)
    for h in range(stage.ndim_in):
        acc = stage.offset[h]
        for l in range(n_out):
            term = grids[l] * stage.linear[h, l]
            if l == n_out - 1:
                np.add(acc, term, out=out[h])
            else:
                acc = acc + term
    return out


def affine_points(stage: AffineStage, p: np.ndarray) -> np.ndarray:
    """``linear @ p + offset`` for points ``(ndim, ...)``."""
    n_in, n_out = stage.linear.shape
    out = np.empty((n_in, *p.shape[1:]))
    tmp = np.empty(p.shape[1:])
    for h in range(n_in):
        acc = out[h]
        np.multiply(p[0], stage.linear[h, 0], out=acc)
        for l in range(1, n_out):
            np.multiply(p[l], stage.linear[h, l], out=tmp)
            acc += tmp
        acc += stage.offset[h]
    return out


# -- fields ------------------------------------------------------------------------------------


def _window_shift(stage: FieldStage):
    """Per grid axis, the index of the coefficients' first sample in the padded array
    (nonzero inside a task that reads a window of a chunked field)."""
    if stage.start is None or not any(stage.start):
        return None
    return np.asarray(stage.start, dtype=np.float64)


def check_displacement(stage: FieldStage, u: np.ndarray) -> None:
    """Raise where sampled displacements break the field's ``max_displacement``."""
    if stage.max_displacement is None:
        return
    for k, limit in enumerate(stage.max_displacement):
        comp = u[k]
        if not np.all(np.abs(comp) <= limit):  # NaN fails too
            worst = float(np.nanmax(np.abs(comp))) if not np.all(np.isnan(comp)) else np.nan
            raise ValueError(
                f"DisplacementField: the displacement along axis {k} reaches {worst:g} (or "
                f"is NaN), beyond max_displacement={stage.max_displacement}; the footprints "
                "planned from it would miss input: give a larger max_displacement"
            )


def sample_field(stage: FieldStage, grid_coords: np.ndarray, ndi) -> np.ndarray:
    """Field values at grid coordinates ``(ndim, ...)``; returns ``(ncomp, ...)``."""
    shifted = grid_coords + stage.npad if stage.npad else grid_coords
    shift = _window_shift(stage)
    if shift is not None:  # exact: integers subtracted from coordinates at or above them
        shifted = shifted - shift.reshape(-1, *(1,) * (shifted.ndim - 1))
    coefficients = stage.coefficients
    if not isinstance(coefficients, np.ndarray):  # a chunked field mapped as points
        coefficients = np.asarray(coefficients)
    out = np.empty((coefficients.shape[0], *grid_coords.shape[1:]))
    for k, coef in enumerate(coefficients):
        ndi.map_coordinates(
            coef,
            shifted,
            output=out[k],
            order=stage.order,
            mode=stage.mode,
            cval=stage.cval,
            prefilter=False,
        )
    check_displacement(stage, out)
    return out


def field_points(stage: FieldStage, p: np.ndarray, ndi) -> np.ndarray:
    """``p + u(p)`` for points ``(ndim, ...)``."""
    grid = np.empty_like(p, dtype=np.float64)
    for a in range(p.shape[0]):
        np.divide(p[a] - stage.origin[a], stage.spacing[a], out=grid[a])
    return p + sample_field(stage, grid, ndi)


def _field_after_affine(stage: FieldStage, base: AffineStage, p, box, ndi) -> np.ndarray:
    """``p + u(p)`` where ``p = base(o)`` for the indices ``o`` of ``box``: ``u`` comes from
    ``affine_transform`` of the coefficients with the matrix ``(base - origin) / spacing``,
    without a coordinate array (faster)."""
    inv = 1.0 / np.asarray(stage.spacing)
    start = np.array([a for a, _ in box], dtype=np.float64)
    matrix = base.linear * inv[:, None]
    offset = (base.offset + base.linear @ start - np.asarray(stage.origin)) * inv
    if stage.npad:
        offset = offset + stage.npad
    shift = _window_shift(stage)
    if shift is not None:
        offset = offset - shift
    shape = tuple(b - a for a, b in box)
    u = np.empty((stage.coefficients.shape[0], *shape))
    for k, coef in enumerate(stage.coefficients):
        ndi.affine_transform(
            coef,
            matrix,
            offset,
            output_shape=shape,
            output=u[k],
            order=stage.order,
            mode=stage.mode,
            cval=stage.cval,
            prefilter=False,
        )
    check_displacement(stage, u)
    u += p
    return u


# -- expressions -------------------------------------------------------------------------------

_MODULES = {"numpy": np, "scipy": scipy}
_ALLOWED_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Assign,
    ast.Return,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Call,
    ast.Attribute,
    ast.Tuple,
    ast.List,
    ast.keyword,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


def _check_source(tree: ast.Module, stage: ExprStage) -> None:
    """Refuse anything but arithmetic on the arguments and numpy/scipy functions."""
    func = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(func, ast.FunctionDef) or func.name != stage.function_name:
        raise ValueError("expression source must define exactly one function")
    known = {a.arg for a in func.args.args} | set(_MODULES)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"expression source uses {type(node).__name__}")
        if isinstance(node, ast.Assign):
            known.update(t.id for t in node.targets if isinstance(t, ast.Name))
        if isinstance(node, ast.Attribute):
            root = node
            while isinstance(root, ast.Attribute):
                if root.attr.startswith("_"):
                    raise ValueError(f"expression source reads a private name {root.attr!r}")
                root = root.value
            if not (isinstance(root, ast.Name) and root.id in _MODULES):
                raise ValueError("expression source reads attributes of a non-module")
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in known:
            raise ValueError(f"expression source reads an unknown name {node.id!r}")


@functools.lru_cache(maxsize=256)
def _compiled(source: str, name: str):

    # the generated code's scipy names, imported when an expression is first compiled
    import scipy.constants  # noqa: F401
    import scipy.special  # noqa: F401

    stage = ExprStage(source, name, 0, 0, (), "")
    tree = ast.parse(source)
    _check_source(tree, stage)
    namespace = dict(_MODULES)
    exec(compile(tree, f"<transfuse expression {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def compile_expression(stage: ExprStage):
    """A function ``f(*coordinate_arrays) -> list of arrays`` from the stage's source (which
    is checked to contain only arithmetic and numpy/scipy functions before it is run)."""
    func = _compiled(stage.source, stage.function_name)
    constants = stage.constants

    def evaluate(*arrays):
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        with np.errstate(all="ignore"):
            out = func(*arrays, *constants)
        return [np.broadcast_to(np.asarray(o, dtype=np.float64), shape) for o in out]

    return evaluate


def expression_points(stage: ExprStage, p: np.ndarray) -> np.ndarray:
    return np.stack(compile_expression(stage)(*p))


def newton_points(stage: NewtonStage, q: np.ndarray) -> np.ndarray:
    """The inverse of ``stage.forward`` at points ``q`` by damped Newton iteration: start
    at ``q``, take full steps ``J^-1 (forward(p) - q)`` and halve a step (up to 30 times)
    while it does not reduce the residual; stop at ``max |forward(p) - q| <= tol``."""
    forward = compile_expression(stage.forward)
    jacobian = compile_expression(stage.jacobian)
    shape = q.shape
    n = shape[0]
    q = np.asarray(q, dtype=np.float64).reshape(n, -1)

    def f(p):
        return np.stack(forward(*p))

    p = q.copy()
    res = f(p) - q
    err = np.abs(res).max(axis=0)
    active = np.flatnonzero(~(err <= stage.tol))
    for _ in range(stage.max_iter):
        if active.size == 0:
            break
        pa, ra, ea, qa = p[:, active], res[:, active], err[active], q[:, active]
        jac = np.stack(jacobian(*pa)).reshape(n, n, -1)
        jac = np.moveaxis(jac, (0, 1), (-2, -1))  # (N, n, n)
        with np.errstate(all="ignore"):
            try:
                step = np.linalg.solve(jac, ra.T[..., None])[..., 0].T
            except np.linalg.LinAlgError:  # a singular Jacobian somewhere
                step = (np.linalg.pinv(jac) @ ra.T[..., None])[..., 0].T
        step = np.where(np.isfinite(step), step, 0.0)
        t = np.ones(active.size)
        todo = np.ones(active.size, dtype=bool)
        for _ in range(30):  # halve the step until the residual decreases
            cand = pa - t * step
            cr = f(cand) - qa
            ce = np.abs(cr).max(axis=0)
            ok = todo & (ce < ea)
            pa = np.where(ok, cand, pa)
            ra = np.where(ok, cr, ra)
            ea = np.where(ok, ce, ea)
            todo &= ~ok
            if not todo.any():
                break
            t = np.where(todo, t / 2, t)
        p[:, active], res[:, active], err[active] = pa, ra, ea
        active = active[~(ea <= stage.tol) & ~todo]  # drop converged and stuck points
    bad = ~(err <= stage.tol)
    if bad.any():
        warnings.warn(
            f"InverseExprMap: Newton did not reach tol={stage.tol:g} at {int(bad.sum())} "
            f"point(s) (worst residual {np.nanmax(err):.3g}); the map may not be "
            "invertible there",
            RuntimeWarning,
            stacklevel=2,
        )
    return p.reshape(shape)


# -- callables ---------------------------------------------------------------------------------


def callable_points(stage: CallableStage, coords: np.ndarray) -> np.ndarray:
    n = stage.ndim
    if coords.shape[0] != n:
        raise ValueError(f"FunctionMap: coordinates must have {n} rows, got {coords.shape}")
    flat = coords.reshape(n, -1)
    if stage.vectorized:
        out = np.asarray(stage.func(flat.copy()), dtype=np.float64)
        if out.shape != flat.shape:
            raise ValueError(
                f"FunctionMap: func returned shape {out.shape} for input shape {flat.shape}"
            )
    else:
        out = np.empty_like(flat)
        for i in range(flat.shape[1]):
            res = stage.func(tuple(float(v) for v in flat[:, i]))
            if len(res) != n:
                raise ValueError(f"FunctionMap: func returned {res!r}, not {n} coordinates")
            out[:, i] = res
    return out.reshape(coords.shape)


# -- a whole map -------------------------------------------------------------------------------


def apply_stage(stage, p: np.ndarray, ndi) -> np.ndarray:
    """One stage (not the first) applied to points ``(ndim, ...)``."""
    if isinstance(stage, AffineStage):
        return affine_points(stage, p)
    if isinstance(stage, FieldStage):
        return field_points(stage, p, ndi)
    if isinstance(stage, ExprStage):
        return expression_points(stage, p)
    if isinstance(stage, NewtonStage):
        return newton_points(stage, p)
    if isinstance(stage, CallableStage):
        return callable_points(stage, p)
    raise TypeError(f"{type(stage).__name__} cannot follow the first stage")


def coordinates(stages, box, ndi) -> np.ndarray:
    """Input coordinates of every point of the output box, ``(ndim_in, *box_shape)``
    (float64, C-contiguous, writeable).

    ``stages[0]`` is an :class:`AffineStage` or a :class:`CoordinateArrayStage` whose
    ``array`` holds this box's coordinates.
    """
    first, rest = stages[0], list(stages[1:])
    if isinstance(first, CoordinateArrayStage):
        p = np.array(first.array, dtype=np.float64, copy=True)
    else:
        p = affine_grid(first, box)
        if rest and isinstance(rest[0], FieldStage) and first.form == "matrix" and not first.view:
            p = _field_after_affine(rest.pop(0), first, p, box, ndi)
    for stage in rest:
        p = apply_stage(stage, p, ndi)
    # affine and field stages map finite points to finite points; others may not
    if any(isinstance(s, ExprStage | NewtonStage | CallableStage) for s in stages):
        if not np.all(np.isfinite(p)):
            raise ValueError(
                f"the fused map gives non-finite coordinates in the output box {tuple(box)} "
                "(e.g. sqrt or log outside its domain, or a division by zero)"
            )
    if p.dtype != np.float64 or not p.flags.writeable or not p.flags.c_contiguous:
        p = np.array(p, dtype=np.float64, order="C")
    return p


def points(stages, p: np.ndarray, ndi) -> np.ndarray:
    """Every stage applied to arbitrary points ``(ndim, ...)`` (the first stage too)."""
    p = np.asarray(p, dtype=np.float64)
    for stage in stages:
        if isinstance(stage, CoordinateArrayStage):
            raise ValueError("a CoordinateMap defines its own grid: it has no point form")
        p = apply_stage(stage, p, ndi)
    return p

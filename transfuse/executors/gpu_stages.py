"""Evaluating the stages of a physical plan on the device (the ``"gpu"`` backend's
counterpart of :mod:`.stages`): array operations through the device's array module
(cupy on a GPU, numpy on the host stand-in), displacement fields sampled by the
interpolation kernel from their spline coefficients, expressions compiled with the
array module in place of numpy.

Inverse maps solved by Newton iteration and user callables run on the host (numpy; a
callable is the user's numpy code) and their result is copied to the device.
"""

from __future__ import annotations

import ast
import functools
import importlib

import numpy as np

from ..planner.physical import (
    AffineStage,
    CallableStage,
    CoordinateArrayStage,
    ExprStage,
    FieldStage,
    NewtonStage,
)
from . import stages as host_stages

__all__ = ["coordinates"]


def affine_grid(xp, stage: AffineStage, box):
    """:func:`.stages.affine_grid` with the array module ``xp`` (same operations, same
    order: the values equal the host's bit for bit)."""
    shape = tuple(b - a for a, b in box)
    grids = []
    if stage.view is None:
        for h, (a, b) in enumerate(box):
            view = [1] * len(box)
            view[h] = b - a
            grids.append(xp.arange(a, b, dtype=np.float64).reshape(view))
    else:
        for j, start, step in stage.view.axes:
            if j is None:
                grids.append(xp.asarray(np.float64(start)))
                continue
            a, b = box[j]
            view = [1] * len(box)
            view[j] = b - a
            idx = start + step * xp.arange(a, b, dtype=np.int64)
            grids.append(idx.astype(np.float64).reshape(view))
    out = xp.empty((stage.ndim_in, *shape))
    if stage.form == "separable":
        for h, g in enumerate(grids):
            c = g
            for kind, vec in stage.ops:
                c = c + float(vec[h]) if kind == "add" else c * float(vec[h])
            out[h] = c
        return out
    n_out = len(grids)
    for h in range(stage.ndim_in):
        acc = xp.asarray(np.float64(stage.offset[h]))
        for l in range(n_out):
            acc = acc + grids[l] * float(stage.linear[h, l])
        out[h] = acc
    return out


def affine_points(xp, stage: AffineStage, p):
    """``linear @ p + offset`` for points ``(ndim, ...)`` (the host's operation order)."""
    n_in, n_out = stage.linear.shape
    out = xp.empty((n_in, *p.shape[1:]))
    for h in range(n_in):
        acc = p[0] * float(stage.linear[h, 0])
        for l in range(1, n_out):
            acc = acc + p[l] * float(stage.linear[h, l])
        out[h] = acc + float(stage.offset[h])
    return out


def field_points(xp, stage: FieldStage, p, sample):
    """``p + u(p)``: ``u`` sampled by ``sample(coefficients, grid_coords, stage)`` at the
    field's grid coordinates ``(p - origin) / spacing`` (+ its pre-padding)."""
    grid = xp.empty_like(p)
    for a in range(p.shape[0]):
        grid[a] = (p[a] - float(stage.origin[a])) / float(stage.spacing[a])
    if stage.npad:
        grid = grid + stage.npad
    shift = host_stages._window_shift(stage)
    if shift is not None:  # a task's window of a chunked field starts at ``stage.start``
        for a in range(p.shape[0]):
            grid[a] -= float(shift[a])
    u = sample(stage, grid)
    host_stages.check_displacement(stage, u)
    return p + u


def _array_namespace(xp):
    """The names an expression's source may use, bound to ``xp`` (cupy / cupyx.scipy)."""
    if xp is np:
        import scipy

        return {"numpy": np, "scipy": scipy}
    return {"numpy": xp, "scipy": importlib.import_module("cupyx.scipy")}


@functools.lru_cache(maxsize=256)
def _compiled(source: str, name: str, xp_name: str):
    tree = ast.parse(source)
    host_stages._check_source(tree, ExprStage(source, name, 0, 0, (), ""))
    xp = np if xp_name == "numpy" else importlib.import_module(xp_name)
    namespace = _array_namespace(xp)
    exec(compile(tree, f"<transfuse expression {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def expression_points(xp, stage: ExprStage, p):
    """The expression's source evaluated with ``xp`` in place of numpy."""
    func = _compiled(stage.source, stage.function_name, xp.__name__)
    arrays = [p[a] for a in range(p.shape[0])]
    with np.errstate(all="ignore"):
        out = func(*arrays, *stage.constants)
    return xp.stack([xp.broadcast_to(xp.asarray(o, dtype=np.float64), p.shape[1:]) for o in out])


def coordinates(device, stages, box, sample):
    """Input coordinates of every point of ``box`` through ``stages``, on the device
    (``(ndim_in, *box_shape)``, float64, C-contiguous). ``sample`` interpolates a field
    stage's coefficients (the interpolation kernel)."""
    xp = device.xp
    first, rest = stages[0], stages[1:]
    if isinstance(first, CoordinateArrayStage):
        p = device.to_device(first.array, dtype=np.float64)
    else:
        p = affine_grid(xp, first, box)
    for stage in rest:
        if isinstance(stage, AffineStage):
            p = affine_points(xp, stage, p)
        elif isinstance(stage, FieldStage):
            p = field_points(xp, stage, p, sample)
        elif isinstance(stage, ExprStage):
            p = expression_points(xp, stage, p)
        elif isinstance(stage, NewtonStage | CallableStage):
            host = host_stages.apply_stage(stage, device.to_host(p), None)
            p = device.to_device(host, dtype=np.float64)
        else:
            raise TypeError(f"{type(stage).__name__} cannot follow the first stage")
    if any(isinstance(s, ExprStage | NewtonStage | CallableStage) for s in stages):
        if not bool(xp.isfinite(p).all()):
            raise ValueError(
                f"the fused map gives non-finite coordinates in the output box {tuple(box)} "
                "(e.g. sqrt or log outside its domain, or a division by zero)"
            )
    return xp.ascontiguousarray(p, dtype=np.float64)

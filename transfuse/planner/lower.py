"""Lowering one fused transform to physical stages (see :mod:`transfuse.planner.physical`).

Runs of affine transforms become single matrices (the innermost run becomes the first
stage, evaluated with scipy's arithmetic); every other transform is a stage evaluated at
the points the stages before it produce. This is the only place that decides how a chain
is evaluated.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from ..transforms import Compose, Scale, Transform, Translate
from ..transforms.nonlinear import (
    CoordinateMap,
    DisplacementField,
    ExprMap,
    FunctionMap,
    InverseExprMap,
    NonlinearTransform,
)
from ..transforms.nonlinear.base import is_dask
from ..transforms.sympy_types import is_sympy_matrix
from .bounds import FieldBounder, MapBounds, affine_bounder, callable_bounder, expression_bounder
from .codegen import expression_stage
from .physical import (
    AffineStage,
    CallableStage,
    CoordinateArrayStage,
    FieldStage,
    NewtonStage,
)

__all__ = ["CompiledMap", "compile_map", "separable_ops"]


@dataclasses.dataclass(frozen=True, eq=False)
class CompiledMap:
    """The stages of a pass and the bounds the planner derives footprints from."""

    stages: tuple
    bounds: MapBounds

    def ranges(self, boxes) -> np.ndarray:
        return self.bounds.ranges(boxes)

    @property
    def bounded(self) -> bool:
        return self.bounds.bounded


def separable_ops(transform: Transform, ndim: int):
    """``[("add", v) | ("mul", v), ...]`` (applied in order) when ``transform`` is a chain of
    Translate and Scale nodes with numeric parameters, else None."""
    ops = []
    for part in reversed(transform.parts):  # the innermost transform acts first
        if part.free_symbols:
            return None
        m = part.matrix(ndim)
        if isinstance(part, Translate):
            ops.append(("add", m[:ndim, ndim]))
        elif isinstance(part, Scale):
            ops.append(("mul", np.diag(m)[:ndim]))
        else:
            return None
    return ops


def _numeric_matrix(transform: Transform, ndim: int) -> np.ndarray:
    matrix = transform.matrix(ndim)
    if is_sympy_matrix(matrix):
        raise ValueError(f"free symbols {sorted(map(str, transform.free_symbols))} are unbound")
    matrix = np.asarray(matrix, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("the composed matrix is not finite")
    return matrix


#: Spline coefficients (and their min/max pyramid) of recently planned fields, by field
#: key, spline options and filter: a field planned again (explain, then compute) is
#: filtered once. At most this many are kept.
_FIELD_CACHE_SIZE = 4
_FIELD_CACHE: collections.OrderedDict = collections.OrderedDict()


#: A numpy field whose spline coefficients (float64, pre-padding included) take more
#: bytes than this is chunked like a dask field (chunks of about
#: :data:`FIELD_CHUNK_BYTES`), so that no graph key carries more than either.
FIELD_INLINE_BYTES = 2**20
FIELD_CHUNK_BYTES = 2**20


def _coefficient_bytes(node: DisplacementField, npad: int) -> int:
    return 8 * node.ndim * int(np.prod([n + 2 * npad for n in node.grid_shape]))


def field_chunks(shape) -> tuple[int, ...]:
    """Grid chunks for a large numpy field ``(ncomp, *grid)``: equal sides, about
    :data:`FIELD_CHUNK_BYTES` per chunk (all components).

    Examples
    --------
    >>> field_chunks((3, 500, 500, 500)), field_chunks((2, 3000, 3000))
    ((35, 35, 35), (256, 256))
    """
    ncomp, grid = shape[0], shape[1:]
    side = max(1, int((FIELD_CHUNK_BYTES / (8 * ncomp)) ** (1 / len(grid))))
    return tuple(min(side, n) for n in grid)


def _field_stage(node: DisplacementField, spline_filter):
    npad = 12 if node.order > 1 and node.mode in ("nearest", "grid-constant") else 0
    chunked = is_dask(node.field) or _coefficient_bytes(node, npad) > FIELD_INLINE_BYTES
    if (node.order > 1 or chunked) and spline_filter is None:
        raise ValueError(
            "planning a DisplacementField of order > 1, a dask one or a large one needs "
            "spline_filter= (transfuse.plan and the lazy API pass scipy's)"
        )
    cache_key = (node.key, node.order, node.mode, node.cval, spline_filter)
    if cache_key in _FIELD_CACHE:
        _FIELD_CACHE.move_to_end(cache_key)
        return _FIELD_CACHE[cache_key]
    if chunked:  # a lazy chunked collection: nothing is read here
        chunks = None if is_dask(node.field) else field_chunks(node.field.shape)
        coef = spline_filter(node.field, node.order, node.mode, node.cval, npad, chunks=chunks)
    elif node.order > 1:
        coef = np.asarray(spline_filter(node.values(), node.order, node.mode, node.cval, npad))
    else:
        coef = np.array(node.values(), dtype=np.float64)
    if not chunked:
        coef.setflags(write=False)
        max_abs = float(np.abs(coef).max()) if coef.size else 0.0
    else:
        max_abs = max(node.max_displacement) if node.max_displacement else 0.0
    stage = FieldStage(
        coefficients=coef,
        order=node.order,
        mode=node.mode,
        cval=float(node.cval),
        npad=npad,
        grid_shape=node.grid_shape,
        spacing=tuple(node.spacing),
        origin=tuple(node.origin),
        key=node.key,
        max_abs=max_abs,
        max_displacement=node.max_displacement,
    )
    bounder = FieldBounder(stage)
    if chunked and node.max_displacement is None:  # one reduction, chunk by chunk
        u_lo, u_hi = bounder.coefficient_range()
        stage = dataclasses.replace(stage, max_abs=float(max(abs(u_lo), abs(u_hi))))
        bounder.stage = stage
    entry = (stage, bounder)
    _FIELD_CACHE[cache_key] = entry
    while len(_FIELD_CACHE) > _FIELD_CACHE_SIZE:
        _FIELD_CACHE.popitem(last=False)
    return entry


def _node_stage(node, spline_filter):
    """(stage, bounder) for a non-linear node."""
    if isinstance(node, DisplacementField):
        return _field_stage(node, spline_filter)
    if isinstance(node, ExprMap):
        node._check_bound()
        bound = expression_bounder(node.expressions, node.coords)
        stage = expression_stage(node.expressions, node.coords, bounded=bound is not None)
        return stage, bound
    if isinstance(node, InverseExprMap):
        fwd = node.forward
        fwd._check_bound()
        import sympy

        jac = [sympy.diff(e, c) for e in fwd.expressions for c in fwd.coords]
        stage = NewtonStage(
            expression_stage(fwd.expressions, fwd.coords, "forward"),
            expression_stage(jac, fwd.coords, "jacobian"),
            float(node.tol),
            int(node.max_iter),
        )
        return stage, None
    if isinstance(node, FunctionMap):
        bound = callable_bounder(node.bounds)
        stage = CallableStage(
            node.func, node.ndim, node.vectorized, node.key, repr(node), bound is not None
        )
        return stage, bound
    if isinstance(node, NonlinearTransform) and type(node).apply is not NonlinearTransform.apply:
        return CallableStage(node.apply, node.ndim, True, node.key, repr(node)), None
    raise NotImplementedError(f"{type(node).__name__} cannot be part of a fused chain")


def _coordinate_stage(node: CoordinateMap, output_chunks):
    coords = node.coords
    ndim_in = coords.shape[0]
    if hasattr(coords, "rechunk"):  # a dask array: keep its chunks unless told otherwise
        coords = coords.rechunk((-1, *output_chunks) if output_chunks else {0: -1})
        chunks = tuple(coords.chunks[1:])
    else:
        from .options import check_chunks

        shape = tuple(coords.shape[1:])
        if output_chunks is not None:
            spec = output_chunks
        elif int(np.prod(shape)) <= SPARSE_POINTS:
            spec = 1  # a few points: each reads only its own neighbourhood
        else:
            spec = _auto_chunks(shape, ndim_in)
        chunks = check_chunks(spec, shape)
    return CoordinateArrayStage(coords, chunks, node.key)


#: A numpy coordinate array of at most this many points is computed one point per task, so
#: that scattered points read (and prefilter) only their own neighbourhoods.
SPARSE_POINTS = 64


def _auto_chunks(shape, ndim_in, target_bytes=2**27):
    """Chunks of about ``target_bytes`` of float64 coordinates (dask's "auto" in spirit:
    equal sizes per axis, whole axes while they fit)."""
    per_point = 8 * ndim_in
    budget = max(1, target_bytes // per_point)
    total = int(np.prod(shape))
    if total <= budget:
        return shape
    side = max(1, int(budget ** (1 / len(shape))))
    return tuple(min(n, side) for n in shape)


def _with_view(stage, view, output_chunks):
    """The first stage reading the selection ``view`` of its grid."""
    if view is None:
        return stage
    if isinstance(stage, AffineStage):
        return dataclasses.replace(stage, view=view)
    # a coordinate array: select its points (numpy or dask indexing)
    arr = stage.array
    index = view.index()
    sub = arr[(slice(None), *index)]
    if hasattr(sub, "rechunk"):
        sub = sub.rechunk((-1, *output_chunks) if output_chunks else {0: -1})
        chunks = tuple(sub.chunks[1:])
    else:
        from .options import check_chunks

        spec = output_chunks if output_chunks is not None else sub.shape[1:]
        chunks = check_chunks(spec, tuple(sub.shape[1:]))
    return CoordinateArrayStage(sub, chunks, f"{stage.key}{view.axes}")


def compile_map(
    transform: Transform,
    ndim: int,
    output_chunks=None,
    *,
    spline_filter=None,
    separable=False,
    view=None,
) -> CompiledMap:
    """The stages (and bounds) of a fused transform on an ``ndim``-D input.

    Parameters
    ----------
    transform : Transform
    ndim : int
        Dimension of the input image.
    output_chunks : optional
        Output chunks (they define the chunks of a coordinate array).
    spline_filter : callable, optional
        ``(values, order, mode, cval, npad) -> coefficients`` for displacement fields of
        order > 1 (:func:`transfuse.executors.spline.field_coefficients`).
    separable : bool
        Evaluate a Translate/Scale chain with scipy's separable ``zoom``/``shift``
        arithmetic instead of its matrix.
    view : GridView, optional
        Compute only a selection of the output grid (lazy indexing).

    Raises
    ------
    ValueError
        If a CoordinateMap is not the rightmost transform, dimensions disagree, symbols are
        unbound or the matrix is not finite.
    """
    free = transform.free_symbols
    if free:
        names = ", ".join(sorted(str(s) for s in free))
        raise ValueError(
            f"the chain has free symbols {names}: they are unbound; bind them first, "
            f"e.g. .bind({names.split(', ')[0]}=...)"
        )
    if transform.is_affine:
        ops = separable_ops(transform, ndim) if separable else None
        if ops is not None:
            stage = AffineStage.separable(ops, ndim)
        else:
            stage = AffineStage.from_matrix(_numeric_matrix(transform, ndim))
        stage = _with_view(stage, view, output_chunks)
        return CompiledMap((stage,), MapBounds((stage,), ()))
    parts = list(transform.parts)
    for i, part in enumerate(parts):
        if isinstance(part, CoordinateMap) and i != len(parts) - 1:
            raise ValueError(
                "a CoordinateMap defines the output grid, so it must be the rightmost "
                f"(innermost) transform of a chain; it is at position {i} of "
                f"{' @ '.join(type(p).__name__ for p in parts)}"
            )
        if part.ndim is not None and part.ndim != ndim and not isinstance(part, CoordinateMap):
            raise ValueError(f"{type(part).__name__} has ndim={part.ndim}, the image has {ndim}")
    stages: list = []
    bounders: list = []
    if isinstance(parts[-1], CoordinateMap):
        # with a view, output_chunks are the view's: the view re-chunks the selection
        stages.append(_coordinate_stage(parts[-1], None if view is not None else output_chunks))
        parts = parts[:-1]
    # innermost first: affine runs as one matrix each, other nodes one stage each
    i = len(parts) - 1
    while i >= 0:
        if parts[i].is_affine:
            j = i
            while j > 0 and parts[j - 1].is_affine:
                j -= 1
            run = parts[j : i + 1]
            chain = run[0] if len(run) == 1 else Compose(tuple(run))
            stage = AffineStage.from_matrix(_numeric_matrix(chain, ndim))
            if not stages:
                stages.append(stage)
            elif not stage.is_identity:
                stages.append(stage)
                bounders.append(affine_bounder(stage))
            i = j - 1
        else:
            if not stages:
                stages.append(AffineStage.from_matrix(np.eye(ndim + 1)))
            stage, bound = _node_stage(parts[i], spline_filter)
            stages.append(stage)
            bounders.append(bound)
            i -= 1
    stages[0] = _with_view(stages[0], view, output_chunks)
    return CompiledMap(tuple(stages), MapBounds(stages, bounders))

"""The planner: an image expression through three named stages to a physical plan.

Each stage is a pure function, testable alone:

1. :func:`logical` — the chain as the user wrote it: the source and its steps.
2. :func:`fuse` — every run of consecutive steps that share interpolation options (order,
   mode, cval, prefilter) becomes one :class:`Run`, holding the composed transform
   ``T1 @ T2 @ ... @ Tk``; a cast to another dtype or a view that drops axes ends a run.
   This is the one place that decides fusion.
3. :func:`lower` — numbers only: one :class:`~transfuse.planner.physical.PhysicalPass` per
   run (stages, output geometry, coefficient chunks, footprints).

Chained steps with *different* options are not fused: each run is resampled on its own (a
resampling pass per run), exactly as running them one after the other would.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..transforms import Compose, Rotate, Scale, Transform, Translate
from .expr import Source, Step
from .footprint import ChunkFootprint, axis_pads, coefficient_chunks, footprints
from .lower import CompiledMap, compile_map
from .options import ResampleOptions, check_chunks, check_size
from .physical import AffineStage, Geometry, PhysicalPass

__all__ = ["Logical", "Plan", "Run", "fuse", "logical", "lower", "plan"]

STAGES = ("logical", "fused", "physical")

#: Operations whose scipy function evaluates a Translate/Scale chain axis by axis.
_SEPARABLE_OPERATIONS = ("zoom", "shift", "affine_transform")


@dataclasses.dataclass(frozen=True, eq=False)
class Logical:
    """The chain as written: the source image and the steps, innermost first."""

    source: Source
    steps: tuple[Step, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """Consecutive steps resampled once, with the composed transform."""

    steps: tuple[Step, ...]
    transform: Transform

    @property
    def last(self) -> Step:
        return self.steps[-1]

    @property
    def options(self) -> ResampleOptions:
        return self.steps[0].options


def logical(expr: Step | Source) -> Logical:
    """Stage 1: the chain of steps below ``expr``, innermost first."""
    steps = []
    node = expr
    while isinstance(node, Step):
        steps.append(node)
        node = node.child
    return Logical(node, tuple(reversed(steps)))


def fuse(chain: Logical) -> tuple[Run, ...]:
    """Stage 2: runs of consecutive steps with equal options; a step that casts to another
    dtype ends its run (the cast happens where running the steps one by one applies it)."""
    runs: list[list[Step]] = []
    dtype = np.dtype(chain.source.dtype)
    ends = False  # the run so far ends in a cast to another dtype, or drops axes
    for step in chain.steps:
        if runs and runs[-1][-1].options == step.options and not ends:
            runs[-1].append(step)
        else:
            runs.append([step])
        cast = step.dtype is not None and np.dtype(step.dtype) != dtype
        ends = cast or (step.view is not None and step.view.drops_axes)
        dtype = np.dtype(step.dtype) if step.dtype is not None else dtype
    out = []
    for run in runs:
        parts = []
        for i, step in enumerate(run):
            parts.append(step.transform)
            if step.view is not None and i < len(run) - 1:
                parts.extend(_view_nodes(step.view))
        transform = parts[0] if len(parts) == 1 else Compose(tuple(parts))
        out.append(Run(tuple(run), transform))
    return tuple(out)


def _view_nodes(view) -> list:
    """A view that keeps every axis, as nodes: index ``start + step * i``."""
    starts = tuple(float(start) for _, start, _ in view.axes)
    steps = tuple(float(step) for _, _, step in view.axes)
    return [Translate(starts), Scale(steps)]


def _step_batch_axes(step: Step, ndim: int) -> tuple[int, ...]:
    """Axes scipy's function works slice by slice along: those outside a rotation plane,
    or the step's own batch axes (an image's channel and time axes)."""
    if step.batch_axes:
        return tuple(step.batch_axes)
    if step.operation != "rotate":
        return ()
    rot = [p for p in step.transform.parts if isinstance(p, Rotate)]
    if len(rot) != 1:
        return ()
    plane = {a % ndim for a in rot[0].axes}
    return tuple(a for a in range(ndim) if a not in plane)


def _empty_footprints(in_shape, out_shape, out_chunks, opts):
    """An empty output has no chunks to compute; an empty input can only give ``cval``
    (scipy reads uninitialised memory in the other modes)."""
    if 0 in out_shape:
        return {}
    if opts.mode not in ("constant", "grid-constant"):
        raise ValueError(
            f"the input has shape {tuple(in_shape)}: an empty image can only be resampled "
            f"with mode 'constant' or 'grid-constant' (every point is cval), not {opts.mode!r}"
        )
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in out_chunks]
    out = {}
    for idx in itertools.product(*(range(len(c)) for c in out_chunks)):
        box = tuple((int(b[i]), int(b[i + 1])) for b, i in zip(bounds, idx, strict=True))
        out[idx] = ChunkFootprint(box, None, False)
    return out


def _identity_on(stage, axes) -> bool:
    """True when an affine stage leaves ``axes`` untouched (row and column of the identity,
    zero offset), so that it can run slice by slice along them."""
    if not isinstance(stage, AffineStage) or stage.form != "matrix":
        return False
    m = stage.matrix
    n = m.shape[0] - 1
    if m.shape[1] - 1 != n:
        return False
    for a in axes:
        unit = np.zeros(n + 1)
        unit[a] = 1.0
        if not (np.array_equal(m[a], unit) and np.array_equal(m[:, a], unit)):
            return False
    return True


def _run_batch_axes(run: Run, ndim: int) -> tuple[int, ...]:
    axes = {_step_batch_axes(s, ndim) for s in run.steps}
    return axes.pop() if len(axes) == 1 else ()


def compile_run(run: Run, ndim: int, spline_filter=None) -> CompiledMap:
    """The stages of one run (scipy's separable arithmetic for a lone zoom/shift step)."""
    separable = len(run.steps) == 1 and run.last.operation in _SEPARABLE_OPERATIONS
    return compile_map(
        run.transform,
        ndim,
        run.last.output_chunks,
        spline_filter=spline_filter,
        separable=separable,
        view=run.last.view,
    )


def lower(chain: Logical, runs: tuple[Run, ...], spline_filter=None) -> tuple[PhysicalPass, ...]:
    """Stage 3: one physical pass per run, with output geometry and footprints.

    ``spline_filter`` computes spline coefficients of displacement fields of order > 1
    (see :func:`~transfuse.planner.lower.compile_map`).
    """
    src = chain.source
    current = Geometry(src.shape, src.chunks, np.dtype(src.dtype))
    passes = []
    for run in runs:
        last = run.last
        compiled = compile_run(run, current.ndim, spline_filter)
        stages = compiled.stages
        first = stages[0]
        if hasattr(first, "output_chunks"):
            out_chunks = first.output_chunks  # the coordinate array's own chunking
        else:
            default = tuple(max(max(c), 1) for c in current.chunks)
            if len(default) != len(last.output_shape):
                default = last.output_shape
            requested = last.output_chunks
            out_chunks = check_chunks(
                requested if requested is not None else default, last.output_shape
            )
        opts = run.options
        out_dtype = np.dtype(last.dtype) if last.dtype is not None else current.dtype
        check_size(last.output_shape, out_chunks, out_dtype)
        batch = _run_batch_axes(run, current.ndim)
        if not (len(stages) == 1 and _identity_on(first, batch)) or last.view is not None:
            batch = ()
        coef_chunks = coefficient_chunks(current.chunks, axis_pads(opts.pad, current.ndim, batch))
        if 0 in current.shape or 0 in last.output_shape:
            fps = _empty_footprints(current.shape, last.output_shape, out_chunks, opts)
            field_windows = ()
        else:
            fps = footprints(compiled.bounds, out_chunks, current.shape, coef_chunks, opts, batch)
            field_windows = compiled.bounds.field_windows
        risk = compiled.bounds.risk
        domain_risk = ()
        if risk is not None and len(risk) == len(fps) and risk.any():
            domain_risk = tuple(idx for idx, r in zip(fps, risk, strict=True) if r)
        plane_stages = ()
        if batch:
            planes = [a for a in range(current.ndim) if a not in batch]
            plane_stages = (first.restricted(planes),)
        output = Geometry(tuple(last.output_shape), tuple(out_chunks), out_dtype)
        passes.append(
            PhysicalPass(
                current,
                output,
                stages,
                opts,
                coef_chunks,
                fps,
                batch,
                plane_stages,
                domain_risk,
                field_windows,
            )
        )
        current = output
    return tuple(passes)


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """The result of planning: the chain as written (``logical``), the fused runs and the
    physical passes."""

    logical: Logical
    runs: tuple[Run, ...]
    passes: tuple[PhysicalPass, ...]

    @property
    def source(self) -> Source:
        return self.logical.source

    @property
    def steps(self) -> list[Step]:
        return list(self.logical.steps)

    @property
    def ntasks(self) -> int:
        """Tasks the plan adds to the source's graph (prefilter and resampling)."""
        total = 0
        for p in self.passes:
            total += p.ntasks
            if p.needs_prefilter:
                total += int(np.prod([len(c) for c in p.coefficient_chunks]))
        return total

    def explain(self, stage: str = "all") -> str:
        """A readable account of the plan: ``"logical"`` (the chain as written), ``"fused"``
        (the runs and their composed transforms), ``"physical"`` (stages, matrices,
        output geometry, layers and tasks per pass), or ``"all"``."""
        from .explain import explain

        return explain(self, stage)

    def __repr__(self) -> str:
        return self.explain()

    def _repr_html_(self) -> str:
        from ..display import plan_html  # display only reads plan data

        return plan_html(self)


def plan(expr: Step | Source, *, spline_filter=None) -> Plan:
    """Plan an image expression: :func:`logical`, then :func:`fuse`, then :func:`lower`."""
    if isinstance(expr, Source):
        raise ValueError("nothing to plan: the image has no transform steps")
    chain = logical(expr)
    runs = fuse(chain)
    return Plan(chain, runs, lower(chain, runs, spline_filter))

"""The planner: image expression -> networkx graph -> fused passes -> physical plan.

Passes (each a pure function, testable alone):

1. :func:`expression_graph` — the chain as a ``networkx.DiGraph`` (source -> steps).
2. :func:`fuse_affine_runs` — every run of consecutive steps that share interpolation options
   becomes one node holding the composed transform ``T1 @ T2 @ ... @ Tk``.
3. :func:`lower` — numbers only: the fused matrix, output chunks, coefficient chunks and the
   footprint of every output chunk.

Chained steps with *different* order/mode/cval/prefilter are not fused: each run is resampled
on its own (a resampling pass per run), exactly as running them one after the other would.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np

from ..transforms import Compose, Transform
from .coords import AffineMap
from .expr import Source, Step
from .footprint import (
    ChunkFootprint,
    axis_pads,
    batched_footprints,
    coefficient_chunks,
    footprints,
)
from .options import ResampleOptions, check_chunks

__all__ = ["FusedStep", "Pass", "Plan", "expression_graph", "fuse_affine_runs", "lower", "plan"]


@dataclasses.dataclass(frozen=True, eq=False)
class FusedStep:
    """A run of steps resampled once, with the composed transform."""

    steps: tuple[Step, ...]
    transform: Transform

    @property
    def last(self) -> Step:
        return self.steps[-1]

    @property
    def options(self) -> ResampleOptions:
        return self.steps[0].options

    @property
    def batch_axes(self) -> tuple[int, ...]:
        """Axes the whole run works slice by slice along (shared by every step)."""
        first = self.steps[0].batch_axes
        return first if all(s.batch_axes == first for s in self.steps) else ()


@dataclasses.dataclass(frozen=True, eq=False)
class Pass:
    """One resampling pass, in numbers: what an executor needs."""

    input_shape: tuple[int, ...]
    input_chunks: tuple[tuple[int, ...], ...]
    input_dtype: np.dtype
    coordinate_map: AffineMap
    output_shape: tuple[int, ...]
    output_chunks: tuple[tuple[int, ...], ...]
    dtype: np.dtype
    options: ResampleOptions
    coefficient_chunks: tuple[tuple[int, ...], ...]
    footprints: dict[tuple[int, ...], ChunkFootprint]
    fused: FusedStep
    batch_axes: tuple[int, ...] = ()
    plane_map: AffineMap | None = None

    @property
    def pads(self) -> tuple[int, ...]:
        """scipy's pre-padding per axis (none along batch axes)."""
        return axis_pads(self.options.pad, len(self.input_shape), self.batch_axes)

    @property
    def needs_prefilter(self) -> bool:
        return self.options.needs_coefficients

    @property
    def ntasks(self) -> int:
        return len(self.footprints)


def expression_graph(expr: Step | Source) -> nx.DiGraph:
    """The expression as a DiGraph whose edges point from an image to the step using it."""
    g = nx.DiGraph()
    node = expr
    chain = []
    while isinstance(node, Step):
        chain.append(node)
        node = node.child
    g.add_node(id(node), node=node, kind="source")
    prev = node
    for step in reversed(chain):
        g.add_node(id(step), node=step, kind="step")
        g.add_edge(id(prev), id(step))
        prev = step
    return g


def _chain(graph: nx.DiGraph) -> list:
    return [graph.nodes[n]["node"] for n in nx.topological_sort(graph)]


def fuse_affine_runs(graph: nx.DiGraph) -> nx.DiGraph:
    """Replace every run of consecutive steps with equal options by one ``FusedStep``."""
    nodes = _chain(graph)
    source, steps = nodes[0], nodes[1:]
    runs: list[list[Step]] = []
    for step in steps:
        if runs and runs[-1][-1].options == step.options:
            runs[-1].append(step)
        else:
            runs.append([step])
    out = nx.DiGraph()
    out.add_node(id(source), node=source, kind="source")
    prev = source
    for run in runs:
        transform = run[0].transform if len(run) == 1 else Compose(tuple(s.transform for s in run))
        fused = FusedStep(tuple(run), transform)
        out.add_node(id(fused), node=fused, kind="fused")
        out.add_edge(id(prev), id(fused))
        prev = fused
    return out


def _numeric_map(fused: FusedStep, ndim: int, output_chunks=None):
    free = fused.transform.free_symbols
    if free:
        names = ", ".join(sorted(str(s) for s in free))
        raise ValueError(
            f"the chain has free symbols {names}: bind them first, "
            f"e.g. .bind({names.split(', ')[0]}=...)"
        )
    if not fused.transform.is_affine:
        from .maps import compile_map  # non-linear chains (displacements, expressions, ...)

        return compile_map(fused.transform, ndim, output_chunks)
    if len(fused.steps) == 1 and fused.last.zoom_shift is not None:
        zoom, shift, *grid = fused.last.zoom_shift
        return AffineMap.from_zoom_shift(zoom, shift, ndim, grid=bool(grid and grid[0]))
    matrix = fused.transform.matrix(ndim)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("the composed matrix is not finite")
    return AffineMap.from_matrix(matrix)


def _default_chunks(shape, input_chunks):
    return tuple(max(c) for c in input_chunks) if len(input_chunks) == len(shape) else shape


def _is_identity_on(cmap, axes) -> bool:
    """True when an affine map leaves ``axes`` untouched (row and column of the identity,
    zero offset), so that it can run slice by slice along them."""
    if not axes or getattr(cmap, "matrix", None) is None or cmap.form != "matrix":
        return False
    m = cmap.matrix
    n = m.shape[0] - 1
    for a in axes:
        unit = np.zeros(n + 1)
        unit[a] = 1.0
        if not (np.array_equal(m[a], unit) and np.array_equal(m[:, a], unit)):
            return False
    return True


def lower(graph: nx.DiGraph) -> list[Pass]:
    """Turn fused steps into numeric passes with output geometry and footprints."""
    nodes = _chain(graph)
    source: Source = nodes[0]
    shape, chunks, dtype = source.shape, source.chunks, np.dtype(source.dtype)
    passes = []
    for fused in nodes[1:]:
        last = fused.last
        out_shape = last.output_shape
        requested = last.output_chunks
        cmap = _numeric_map(fused, len(shape), requested)
        if getattr(cmap, "output_chunks", None) is not None:
            out_chunks = cmap.output_chunks  # the map's own chunking (coordinate arrays)
        else:
            out_chunks = check_chunks(
                requested if requested is not None else _default_chunks(out_shape, chunks),
                out_shape,
            )
        opts = fused.options
        batch = fused.batch_axes if _is_identity_on(cmap, fused.batch_axes) else ()
        coef_chunks = coefficient_chunks(chunks, axis_pads(opts.pad, len(shape), batch))
        plane_map = None
        if batch:
            plane_map = cmap.restricted([a for a in range(len(shape)) if a not in batch])
            fps = batched_footprints(plane_map, out_chunks, shape, chunks, coef_chunks, opts, batch)
        else:
            fps = footprints(cmap, out_chunks, shape, coef_chunks, opts)
        out_dtype = np.dtype(last.dtype) if last.dtype is not None else dtype
        passes.append(
            Pass(
                shape,
                chunks,
                dtype,
                cmap,
                out_shape,
                out_chunks,
                out_dtype,
                opts,
                coef_chunks,
                fps,
                fused,
                batch,
                plane_map,
            )
        )
        shape, chunks, dtype = out_shape, out_chunks, out_dtype
    return passes


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """The result of planning: the chain as written, the fused chain and the passes."""

    source: Source
    graph: nx.DiGraph
    fused_graph: nx.DiGraph
    passes: tuple[Pass, ...]

    @property
    def steps(self) -> list[Step]:
        return [n for n in _chain(self.graph) if isinstance(n, Step)]

    @property
    def ntasks(self) -> int:
        """Tasks the plan adds to the source's graph (prefilter and resampling)."""
        total = 0
        for p in self.passes:
            total += p.ntasks
            if p.needs_prefilter:
                total += int(np.prod([len(c) for c in p.coefficient_chunks]))
        return total

    def explain(self) -> str:
        """A readable account of the plan: the chain before and after fusion, the fused
        matrix, output shape and chunks, resampling passes and tasks."""
        from .explain import explain

        return explain(self)

    def __repr__(self) -> str:
        return self.explain()


def plan(expr: Step | Source) -> Plan:
    """Plan an image expression (see module docstring for the passes)."""
    if isinstance(expr, Source):
        raise ValueError("nothing to plan: the image has no transform steps")
    graph = expression_graph(expr)
    fused = fuse_affine_runs(graph)
    passes = lower(fused)
    return Plan(expr.source, graph, fused, tuple(passes))

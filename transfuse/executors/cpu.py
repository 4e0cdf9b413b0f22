"""Turn a :class:`~transfuse.planner.plan.Plan` into one dask array.

Per pass: one prefilter layer (only when the interpolation needs spline coefficients), one
resampling layer with a task per output chunk that reads only the coefficient chunks of its
footprint. Keys are tokens of every parameter that changes the result.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..planner.footprint import axis_pads, chunk_bounds, coefficient_chunks
from ..planner.options import ResampleOptions
from .kernels import prefilter_chunk, resample_chunk
from .spline import filter_axis_whole, filter_indices, halo_depth

__all__ = ["CPUExecutor", "ResampleJob", "spline_coefficients"]


@dataclasses.dataclass(frozen=True, eq=False)
class ResampleJob:
    """What every chunk task of one pass shares."""

    coordinate_map: object
    input_shape: tuple[int, ...]
    options: ResampleOptions
    dtype: np.dtype
    batch_axes: tuple[int, ...] = ()
    plane_job: ResampleJob | None = None  # the job of one slice, when batch_axes


@functools.lru_cache(maxsize=65536)
def _axis_info(chunks: tuple, pad: int, ids: tuple):
    """Domain starts and sizes of the chunks ``ids`` of one axis (cached: many tasks share)."""
    bounds = chunk_bounds(chunks, pad)
    return ([int(bounds[i]) for i in ids], [int(chunks[i]) for i in ids])


def _filter_axis_plan(n, chunks, coef_chunks, pad, depth, whole, mode):
    """Per chunk of one axis: its domain span, the input chunks its filter window reads and
    where they sit (the filter is separable, so axes are planned independently)."""
    in_bounds = chunk_bounds(chunks, 0)
    coef_bounds = chunk_bounds(coef_chunks, pad)
    out = []
    for i in range(len(coef_chunks)):
        span = (int(coef_bounds[i]), int(coef_bounds[i + 1]))
        axis_spec = {
            "shape": (n,),
            "pad": pad,
            "depth": depth,
            "whole": (whole,),
            "span": (span,),
            "mode": mode,
        }
        src = filter_indices(axis_spec)[0]
        src = src[src >= 0]
        ids = tuple(sorted(set((np.searchsorted(in_bounds, src, side="right") - 1).tolist())))
        out.append((span, ids, _axis_info(tuple(chunks), 0, ids)))
    return out


def spline_coefficients(
    array: da.Array,
    options: ResampleOptions,
    depth: int | None = None,
    pad: int | None = None,
    batch_axes: tuple[int, ...] = (),
):
    """B-spline coefficients of ``array`` as scipy computes them (float64), chunked like the
    input, with scipy's 12-sample pre-padding added to the end chunks where the mode has it.

    Parameters
    ----------
    array : dask.array.Array
    options : ResampleOptions
        ``order`` (2-5), ``mode`` and ``cval`` decide the filter's boundary handling.
    depth : int, optional
        Halo per side; by default :func:`~transfuse.executors.spline.halo_depth` (1e-10).
    pad : int, optional
        Pre-padding per side; by default ``options.pad`` (what interpolation needs). ``pad=0``
        gives exactly ``scipy.ndimage.spline_filter(array, order, mode=mode)``.
    batch_axes : tuple of int
        Axes left unfiltered and unpadded (a pass working slice by slice along them).
    """
    order, mode = options.order, options.mode
    pad = options.pad if pad is None else int(pad)
    if pad < 0:
        raise ValueError(f"pad={pad!r} must be a non-negative integer")
    depth = halo_depth(order) if depth is None else int(depth)
    if depth < 0:
        raise ValueError(f"depth={depth!r} must be a non-negative integer")
    shape, chunks = array.shape, array.chunks
    pads = axis_pads(pad, len(shape), batch_axes)
    filtered = tuple(a not in batch_axes for a in range(len(shape)))
    coef_chunks = coefficient_chunks(chunks, pads)
    whole = tuple(
        filter_axis_whole(n, pad, depth, len(c)) for n, c in zip(shape, chunks, strict=True)
    )
    name = "spline-coefficients-" + tokenize(
        array.name, order, mode, pad, options.cval if pad else 0, depth, whole, chunks, filtered
    )
    source = array.name
    per_axis = [
        _filter_axis_plan(n, c, cc, p, depth if f else 0, w and f, mode)
        for n, c, cc, p, f, w in zip(shape, chunks, coef_chunks, pads, filtered, whole, strict=True)
    ]
    dsk = {}
    for idx in itertools.product(*(range(len(c)) for c in coef_chunks)):
        axes = [per_axis[a][i] for a, i in enumerate(idx)]
        spec = {
            "shape": shape,
            "order": order,
            "mode": mode,
            "pad": pad,
            "cval": options.cval,
            "depth": depth,
            "whole": whole,
            "span": tuple(a[0] for a in axes),
            "filtered": filtered,
        }
        ids = [a[1] for a in axes]
        deps = [(source, *k) for k in itertools.product(*ids)]
        layouts = [a[2] for a in axes]
        dsk[(name, *idx)] = (prefilter_chunk, spec, layouts, [len(i) for i in ids], *deps)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[array])
    return da.Array(graph, name, coef_chunks, dtype=np.float64, meta=np.empty((0,) * len(shape)))


class CPUExecutor:
    """Executes plans with scipy.ndimage per chunk."""

    name = "cpu"

    def to_dask(self, plan, array: da.Array) -> da.Array:
        """The plan's result as a dask array whose graph starts at ``array``."""
        current = array
        for p in plan.passes:
            current = self._resample_pass(p, current)
        return current

    def _resample_pass(self, p, array):
        opts = p.options
        coef = (
            spline_coefficients(array, opts, batch_axes=p.batch_axes)
            if p.needs_prefilter
            else array
        )
        plane_job = None
        if p.batch_axes:
            planes = [a for a in range(len(p.input_shape)) if a not in p.batch_axes]
            plane_job = ResampleJob(
                p.plane_map, tuple(p.input_shape[a] for a in planes), opts, np.dtype(p.dtype)
            )
        job = ResampleJob(
            p.coordinate_map, p.input_shape, opts, np.dtype(p.dtype), p.batch_axes, plane_job
        )
        name = "resample-" + tokenize(
            coef.name,
            p.coordinate_map.token,
            opts,
            p.output_shape,
            p.output_chunks,
            str(p.dtype),
            p.input_shape,
            p.batch_axes,
        )
        cmap = p.coordinate_map
        coef_name = coef.name
        dsk = {}
        for idx, fp in p.footprints.items():
            if fp.axes is None:
                # grid-constant still weighs cval by each point's taps: it needs coordinates
                extras = list(cmap.extra_keys(idx)) if opts.mode == "grid-constant" else []
                dsk[(name, *idx)] = (resample_chunk, job, fp, [], len(extras), *extras)
                continue
            pads = p.pads
            infos = [
                _axis_info(p.coefficient_chunks[a], pads[a], tuple(w.chunks))
                for a, w in enumerate(fp.axes)
            ]
            extras = list(cmap.extra_keys(idx))
            deps = [(coef_name, *k) for k in fp.dependencies]
            dsk[(name, *idx)] = (resample_chunk, job, fp, infos, len(extras), *extras, *deps)
        collections = [coef, *cmap.collections]
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=collections)
        meta = np.empty((0,) * len(p.output_shape), dtype=p.dtype)
        return da.Array(graph, name, p.output_chunks, meta=meta)

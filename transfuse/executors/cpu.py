"""Turn a :class:`~transfuse.planner.plan.Plan` into one dask array.

Per pass: one prefilter layer (only when the interpolation needs spline coefficients), one
resampling layer with a task per output chunk that reads only the coefficient chunks of its
footprint. Keys are tokens of every parameter that changes the result.
"""

from __future__ import annotations

import dataclasses
import itertools

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..planner.footprint import chunk_bounds, coefficient_chunks
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


def _axis_info(chunks, pad, ids):
    bounds = chunk_bounds(chunks, pad)
    return ([int(bounds[i]) for i in ids], [int(chunks[i]) for i in ids])


def spline_coefficients(
    array: da.Array, options: ResampleOptions, depth: int | None = None, pad: int | None = None
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
    """
    order, mode = options.order, options.mode
    pad = options.pad if pad is None else int(pad)
    if pad < 0:
        raise ValueError(f"pad={pad!r} must be a non-negative integer")
    depth = halo_depth(order) if depth is None else int(depth)
    if depth < 0:
        raise ValueError(f"depth={depth!r} must be a non-negative integer")
    shape, chunks = array.shape, array.chunks
    coef_chunks = coefficient_chunks(chunks, pad)
    whole = tuple(
        filter_axis_whole(n, pad, depth, len(c)) for n, c in zip(shape, chunks, strict=True)
    )
    name = "spline-coefficients-" + tokenize(
        array.name, order, mode, pad, options.cval if pad else 0, depth, whole, chunks
    )
    in_bounds = [chunk_bounds(c, 0) for c in chunks]
    coef_bounds = [chunk_bounds(c, pad) for c in coef_chunks]
    dsk = {}
    for idx in itertools.product(*(range(len(c)) for c in coef_chunks)):
        span = tuple(
            (int(coef_bounds[a][i]), int(coef_bounds[a][i + 1])) for a, i in enumerate(idx)
        )
        spec = {
            "shape": shape,
            "order": order,
            "mode": mode,
            "pad": pad,
            "cval": options.cval,
            "depth": depth,
            "whole": whole,
            "span": span,
        }
        ids = []
        for a, src in enumerate(filter_indices(spec)):
            src = src[src >= 0]
            ids.append(sorted(set((np.searchsorted(in_bounds[a], src, side="right") - 1).tolist())))
        layouts = [_axis_info(chunks[a], 0, ids[a]) for a in range(len(shape))]
        deps = [(array.name, *k) for k in itertools.product(*ids)]
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
        coef = spline_coefficients(array, opts) if p.needs_prefilter else array
        job = ResampleJob(p.coordinate_map, p.input_shape, opts, np.dtype(p.dtype))
        name = "resample-" + tokenize(
            coef.name,
            p.coordinate_map.token,
            opts,
            p.output_shape,
            p.output_chunks,
            str(p.dtype),
            p.input_shape,
        )
        cmap = p.coordinate_map
        dsk = {}
        for idx, fp in p.footprints.items():
            if fp.axes is None:
                dsk[(name, *idx)] = (resample_chunk, job, fp, [], 0)
                continue
            infos = [
                _axis_info(p.coefficient_chunks[a], opts.pad, w.chunks)
                for a, w in enumerate(fp.axes)
            ]
            extras = list(cmap.extra_keys(idx))
            deps = [(coef.name, *k) for k in fp.dependencies]
            dsk[(name, *idx)] = (resample_chunk, job, fp, infos, len(extras), *extras, *deps)
        collections = [coef, *cmap.collections]
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=collections)
        meta = np.empty((0,) * len(p.output_shape), dtype=p.dtype)
        return da.Array(graph, name, p.output_chunks, meta=meta)

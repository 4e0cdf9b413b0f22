"""The graph builder, shared by every backend: a physical plan to one dask array.

Per pass: one prefilter layer (only when the interpolation needs spline coefficients), one
resampling layer with a task per output chunk that reads only the coefficient chunks of its
footprint. Array data a pass's stages carry travels once: a displacement field's
coefficients are one graph key shared by the tasks, a coordinate array is a dask
collection read chunk by chunk. Keys are tokens of every parameter that changes the result
(the backend's name included).

A resampling task carries its footprint as one flat tuple (:func:`pack_footprint`) and
shares every other argument it can with the pass's other tasks: a distributed scheduler
unpickles the graph whole, at a cost set by the number of objects in it. With the dask
config :data:`READS_KEY` set to ``"direct"``, tasks of a pass reading a zarr array
slice their input from the store themselves (:func:`_run_resample_reading`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import itertools
import sys
import uuid

import dask
import dask.array as da
import numpy as np
from dask._task_spec import List, Task, TaskRef
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..planner.boundary import CVAL, tap_source_index
from ..planner.footprint import (
    AxisWindow,
    ChunkFootprint,
    axis_pads,
    chunk_bounds,
    coefficient_chunks,
)
from ..planner.options import ResampleOptions
from ..planner.physical import CoordinateArrayStage, FieldStage, FieldWindows
from .base import ResampleJob
from .blocks import AxisLayout, assemble_region
from .spline import PrefilterSpec, filter_axis_whole, filter_indices, halo_depth

__all__ = [
    "pack_footprint",
    "paused_gc",
    "resample_pass",
    "spline_coefficients",
    "to_dask",
    "unpack_footprint",
]


def _refs(keys) -> list[TaskRef]:
    """References to the chunks under ``keys``: passed as a task's trailing positional
    arguments, the scheduler fills them with the chunks' values.

    Tasks are built in dask's task-spec form (``Task``, ``TaskRef``) rather than as legacy
    tuples: the scheduler then reads each task's dependencies directly instead of walking
    every nested argument to convert the graph (measured: about 3 s of a 10^4-chunk graph's
    submission to a distributed scheduler went into that conversion).
    """
    return [TaskRef(k) for k in keys]


@functools.lru_cache(maxsize=64)
def _nothing(n: int) -> tuple:
    """``n`` Nones, one shared tuple (pickled once per graph, not once per task)."""
    return (None,) * n


def _argument(values: list):
    """A list argument of a task: a task-spec ``List`` when it holds references, else a
    plain tuple (no container to walk; the all-None one shared by every task)."""
    if any(isinstance(v, (TaskRef, List)) for v in values):
        return List(*values)
    if all(v is None for v in values):
        return _nothing(len(values))
    return tuple(values)


def pack_footprint(fp: ChunkFootprint) -> tuple:
    """A footprint as one flat tuple of numbers, as a resampling task carries it.

    A graph of 10^4 output chunks is unpickled by the distributed scheduler in one go,
    and there the cost is the number of objects, not bytes: Python's garbage collector
    walks every new container again and again while they are created (measured: 0.16 s
    for the tasks of 10^4 chunks with the collector off, 0.9-1.9 s with it on). A
    footprint's dataclasses, tuples and their dicts are 10-20 objects; this is one.
    :func:`unpack_footprint` rebuilds the footprint inside the task.

    Layout: ``output ndim, direct, input ndim (-1: no axes), box (2 per output axis)``,
    then per input axis ``lo, hi, first, last, nchunks, chunk indices`` (a plane or a
    line of a volume has fewer output axes than input axes).

    Examples
    --------
    >>> fp = ChunkFootprint(((0, 4),), (AxisWindow(1, 5, (0, 1), 1.5, 4.5),), True)
    >>> pack_footprint(fp)
    (1, True, 1, 0, 4, 1, 5, 1.5, 4.5, 2, 0, 1)
    >>> unpack_footprint(pack_footprint(fp)) == fp
    True
    """
    out = [len(fp.box), fp.direct, -1 if fp.axes is None else len(fp.axes)]
    for lo, hi in fp.box:
        out += (lo, hi)
    for w in fp.axes or ():
        out += (w.lo, w.hi, w.first, w.last, len(w.chunks), *w.chunks)
    return tuple(out)


def unpack_footprint(packed: tuple) -> ChunkFootprint:
    """The footprint :func:`pack_footprint` packed."""
    ndim, direct, naxes = packed[:3]
    box = tuple((packed[3 + 2 * a], packed[4 + 2 * a]) for a in range(ndim))
    if naxes < 0:
        return ChunkFootprint(box, None, direct)
    axes, i = [], 3 + 2 * ndim
    for _ in range(naxes):
        lo, hi, first, last, n = packed[i : i + 5]
        axes.append(AxisWindow(lo, hi, tuple(packed[i + 5 : i + 5 + n]), first, last))
        i += 5 + n
    return ChunkFootprint(box, tuple(axes), direct)


@functools.lru_cache(maxsize=65536)
def _axis_info(chunks: tuple, pad: int, ids: tuple):
    """Domain starts and sizes of the chunks ``ids`` of one axis (cached: many tasks share)."""
    bounds = chunk_bounds(chunks, pad)
    return (tuple(int(bounds[i]) for i in ids), tuple(int(chunks[i]) for i in ids))


def _layouts(infos):
    return [AxisLayout(*info) for info in infos]


def _run_prefilter(executor, spec, infos, *pieces):
    return executor.prefilter_chunk(spec, list(pieces), _layouts(infos))


def _read_chunks(source, infos):
    """The input chunks ``infos`` describes (per axis: starts and sizes), in row-major
    order, read from ``source``: through its process's cache of decoded chunks where it
    keeps one (``source.chunk``), else each chunk's box sliced from it."""
    chunk = getattr(source, "chunk", None)
    pieces = []
    for ids in itertools.product(*(zip(*info, strict=True) for info in infos)):
        start, size = tuple(s for s, _ in ids), tuple(k for _, k in ids)
        piece = None if chunk is None else chunk(start, size)
        if piece is None:
            piece = np.asarray(source[tuple(slice(a, a + k) for a, k in ids)])
        pieces.append(piece)
    return pieces


def _run_prefilter_reading(executor, spec, infos, source):
    """:func:`_run_prefilter` reading its input chunks itself (:func:`_read_chunks`): the
    same samples as when they arrive from their own tasks, so the same coefficients."""
    return _run_prefilter(executor, spec, infos, *_read_chunks(source, infos))


def _field_window(window, field_pieces):
    """The coefficients a task's field window reads, from the chunks holding them."""
    ranges, infos = window
    counts = [1] + [len(info[0]) for info in infos]
    layouts = [AxisLayout((0,), (ranges[0][1] + 1,)), *_layouts(infos)]
    return assemble_region(field_pieces, counts, layouts, ranges)


def _with_inputs(stages, inputs) -> tuple:
    """The stages with their data (field coefficients, coordinate blocks) attached."""
    stages = list(stages)
    for i, value in enumerate(inputs):
        if value is None:
            continue
        if isinstance(value, list):  # a chunked field: [window, chunks]
            coef = _field_window(value[0], value[1])
            start = tuple(lo for lo, _ in value[0][0][1:])
            stages[i] = dataclasses.replace(stages[i], coefficients=coef, start=start)
        elif isinstance(stages[i], FieldStage):
            stages[i] = dataclasses.replace(stages[i], coefficients=value)
        else:
            stages[i] = dataclasses.replace(stages[i], array=value)
    return tuple(stages)


def _run_resample(executor, job, footprint, infos, inputs, *pieces, dest=None):
    if any(v is not None for v in inputs):
        job = dataclasses.replace(job, stages=_with_inputs(job.stages, inputs))
    if isinstance(footprint, tuple):
        footprint = unpack_footprint(footprint)
    if dest is None:
        return executor.resample_chunk(job, footprint, list(pieces), _layouts(infos))
    return _resample_into(executor, job, footprint, list(pieces), _layouts(infos), dest)


def _resample_into(executor, job, footprint, pieces, layouts, dest):
    """The chunk written into its box of the whole result ``dest``; returns that view.
    A backend with ``resample_chunk_into`` writes it there itself (the ``"cpu"`` backend:
    through a buffer its thread reuses, no fresh array per chunk)."""
    view = dest[tuple(slice(s, e) for s, e in footprint.box)]
    into = getattr(executor, "resample_chunk_into", None)
    if into is not None:
        into(job, footprint, pieces, layouts, view)
    else:
        view[...] = executor.resample_chunk(job, footprint, pieces, layouts)
    return view


def _run_resample_reading(executor, job, footprint, infos, inputs, source, dest=None):
    """:func:`_run_resample` reading its input itself: the input chunks ``infos``
    describes, each through the process's cache of decoded chunks where ``source`` keeps
    one (``source.chunk``: :class:`transfuse.io.zarr_chunks.ZarrChunks` where the dask
    chunks are the stored ones), else the box covering them in one slice of ``source`` (a
    zarr array), as one piece. Either way the pieces hold exactly the samples those
    chunks hold, so the result is the same bit for bit as when the chunks arrive from
    their own tasks."""
    if getattr(source, "chunk", None) is not None:
        pieces = _read_chunks(source, infos)
        return _run_resample(executor, job, footprint, infos, inputs, *pieces, dest=dest)
    box = tuple(slice(starts[0], starts[-1] + sizes[-1]) for starts, sizes in infos)
    region = np.asarray(source[box])
    infos = tuple(((b.start,), (b.stop - b.start,)) for b in box)
    fp = unpack_footprint(footprint)
    one = tuple(dataclasses.replace(w, chunks=w.chunks[:1]) for w in fp.axes)
    fp = dataclasses.replace(fp, axes=one)
    return _run_resample(executor, job, fp, infos, inputs, region, dest=dest)


def _run_coordinates(executor, stages, box, inputs):
    return executor.coordinates(_with_inputs(stages, inputs), box)


def _span_plan(n, chunks, span, pad, depth, whole, mode):
    """For the coefficients of the domain range ``span`` of one axis: the span, the input
    chunks its filter window reads and where they sit (the filter is separable, so axes are
    planned independently)."""
    in_bounds = chunk_bounds(chunks, 0)
    axis_spec = PrefilterSpec((n,), 0, mode, pad, 0.0, depth, (whole,), (span,), (True,))
    src = filter_indices(axis_spec)[0]
    src = src[src >= 0]
    ids = tuple(sorted(set((np.searchsorted(in_bounds, src, side="right") - 1).tolist())))
    return span, ids, _axis_info(tuple(chunks), 0, ids)


def _filter_axis_plan(n, chunks, coef_chunks, pad, depth, whole, mode):
    """:func:`_span_plan` for every coefficient chunk of one axis."""
    coef_bounds = chunk_bounds(coef_chunks, pad)
    return [
        _span_plan(
            n, chunks, (int(coef_bounds[i]), int(coef_bounds[i + 1])), pad, depth, whole, mode
        )
        for i in range(len(coef_chunks))
    ]


#: A task computes its own spline coefficients (from the input, with a halo) when that
#: costs this many times less than filtering the coefficient chunks its window touches: a
#: few points into a huge volume, or a thin oblique plane, then cost their neighbourhood,
#: not whole chunks.
SPARSE_RATIO = 3

#: Under ``"auto"``, every task of a pass filters its own window (as with ``"local"``)
#: when the pass's shared coefficient chunks would hold more than this many bytes in all:
#: shared chunks wait in memory for their readers, and dask's order computes many of them
#: before those run (a 4 GiB float32 input has 8 GiB of float64 coefficients), while local
#: filtering keeps memory near the tasks running at once. Measured on 2 cores, order 3,
#: chunks 128**3: 384**3 in memory, shared 3.2 s and local 3.1 s; 512**3 zarr to zarr,
#: shared 17.0 s / 1442 MiB peak and local 10.6 s / 862 MiB (there a task's window is
#: 0.9-1.6 times its share of the shared chunks it reads). A task whose own window costs
#: more than :data:`LOCAL_COST_RATIO` times that share keeps reading the shared chunks:
#: coordinates spread over the whole volume would otherwise filter all of it once per task.
SHARED_COEFFICIENT_BYTES = 2**29
LOCAL_COST_RATIO = 2

#: dask config key choosing where spline coefficients are computed: ``"auto"`` (the
#: default: shared coefficient chunks, a task's own window where :data:`SPARSE_RATIO` or
#: :data:`SHARED_COEFFICIENT_BYTES` says so), ``"local"`` (every task filters its own
#: window with a halo: no coefficient chunk is kept between tasks, so memory stays near
#: the tasks running at once) or ``"shared"``.
PREFILTER_KEY = "transfuse.prefilter"
PREFILTER_CHOICES = ("auto", "local", "shared")

#: dask config key choosing how a resampling pass at order 0 or 1 whose input is a zarr
#: array (:func:`transfuse.io.arrays.read_image`, ``dask.array.from_zarr``) reads it:
#: ``"shared"`` (dask's task per input chunk, each chunk read once and handed to every
#: output chunk reading it; on a cluster it travels between workers), ``"direct"``
#: (every resampling task reads the input chunks it needs from the store itself: no input
#: task, no dependency, nothing sent between workers; each process decodes a chunk about
#: once through its cache of decoded chunks, ``transfuse.zarr_chunk_cache``, where the
#: reader keeps one) or ``"auto"`` (the default: ``"direct"`` where a ``distributed``
#: client is dask's scheduler when the graph is built, else ``"shared"``; measured on
#: the 1024**3 benchmark: threads 30.8 s shared against 34.8 direct, a LocalCluster of
#: 2 workers 49.8 s shared against 35.9 direct). Every choice gives the same samples.
#: At orders above 1 the same applies to the tasks that filter their own window
#: (``transfuse.prefilter="local"``, or above :data:`SHARED_COEFFICIENT_BYTES`).
READS_KEY = "transfuse.zarr_reads"
READS_CHOICES = ("auto", "shared", "direct")


def _on_a_cluster() -> bool:
    """Whether dask's current scheduler is a ``distributed`` client (without importing
    distributed where nothing has)."""
    if "distributed" not in sys.modules:
        return False
    try:
        scheduler = dask.base.get_scheduler()
    except Exception:  # noqa: BLE001 - no usable default: not a cluster
        return False
    owner = getattr(scheduler, "__self__", None)
    return type(owner).__module__.startswith("distributed")


def reads_choice() -> str:
    """The configured :data:`READS_KEY`, ``"auto"`` resolved (ValueError naming it when
    unknown)."""
    choice = dask.config.get(READS_KEY, "auto")
    if choice not in READS_CHOICES:
        raise ValueError(f"dask config {READS_KEY}={choice!r} is not one of {list(READS_CHOICES)}")
    if choice == "auto":
        return "direct" if _on_a_cluster() else "shared"
    return choice


def zarr_source(array: da.Array):
    """``(layer name, zarr array)`` when ``array`` is a zarr array read by
    ``dask.array.from_zarr`` or by transfuse's reader (a ``reads_zarr`` object:
    :class:`transfuse.io.zarr_chunks.ZarrChunks`) and nothing else (a getter per chunk of
    one stored array), else None."""
    original = "original-" + array.name
    layers = array.dask.layers
    if set(layers) != {array.name, original} or len(layers[original]) != 1:
        return None
    value = layers[original].get(original)
    value = getattr(value, "value", value)  # a DataNode holds it
    if not (type(value).__module__.startswith("zarr") or getattr(value, "reads_zarr", False)):
        return None
    if tuple(getattr(value, "shape", ())) != array.shape or value.dtype != array.dtype:
        return None
    return original, value


def prefilter_choice() -> str:
    """The configured :data:`PREFILTER_KEY` (ValueError naming it when unknown)."""
    choice = dask.config.get(PREFILTER_KEY, "auto")
    if choice not in PREFILTER_CHOICES:
        raise ValueError(
            f"dask config {PREFILTER_KEY}={choice!r} is not one of {list(PREFILTER_CHOICES)}"
        )
    return choice


@functools.lru_cache(maxsize=65536)
def _tap_span(lo: int, hi: int, n: int, mode: str, pad: int):
    """Domain range ``[start, stop)`` of the samples the taps ``lo..hi`` read (None: all
    read cval)."""
    src = tap_source_index(np.arange(lo, hi + 1), n, mode, pad)
    src = src[src != CVAL]
    return None if src.size == 0 else (int(src.min()), int(src.max()) + 1)


def _sharing(p) -> float:
    """How many resampling tasks read a coefficient chunk, on average."""
    reads = sum(len(fp.dependencies) for fp in p.footprints.values() if fp.axes is not None)
    nchunks = int(np.prod([len(c) for c in p.coefficient_chunks]))
    return max(1.0, reads / max(nchunks, 1))


def _shared_coefficient_bytes(p, coef) -> int:
    """Bytes of every coefficient chunk of a pass, halos left out."""
    shape = [sum(c) for c in p.coefficient_chunks]
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(coef.dtype).itemsize


def _local_prefilter(
    p,
    idx,
    fp,
    array,
    executor,
    depth,
    name,
    sharing=1.0,
    always=False,
    ratio=SPARSE_RATIO,
    source=None,
):
    """A prefilter task for just what ``fp`` reads, or None when the shared coefficient
    chunks are the better deal (unless ``always``): when the task's share of them (what it
    reads, divided by how many tasks read each chunk) is less than ``ratio`` times its own
    window. With ``source`` (a :class:`TaskRef` to a stored zarr array, direct reads) the
    task reads its input chunks itself. Returns (graph key, task, layouts info)."""
    pads = p.pads
    spans, touched, local = [], 1, 1  # samples filtered (halos included) each way
    for a, w in enumerate(fp.axes):
        halo = 0 if a in p.batch_axes else 2 * depth
        if a in p.batch_axes:
            span = (w.lo, w.hi + 1)
        else:
            span = _tap_span(w.lo, w.hi, p.input.shape[a], p.options.mode, pads[a])
            if span is None:
                return None
        spans.append(span)
        touched *= sum(p.coefficient_chunks[a][i] + halo for i in w.chunks)
        local *= min(span[1] - span[0] + halo, p.input.shape[a] + 2 * pads[a] + halo)
    if not always and touched / sharing < ratio * local:  # each task pays a share
        return None
    opts = p.options
    shape, chunks = p.input.shape, array.chunks
    filtered = tuple(a not in p.batch_axes for a in range(len(shape)))
    dtype = coefficient_dtype(executor, array.dtype, opts.order, sum(filtered))
    whole = tuple(
        filter_axis_whole(n, opts.pad, depth, len(c)) for n, c in zip(shape, chunks, strict=True)
    )
    axes = [
        _span_plan(n, c, span, pd, depth if f else 0, wh and f, opts.mode)
        for n, c, span, pd, f, wh in zip(shape, chunks, spans, pads, filtered, whole, strict=True)
    ]
    spec = PrefilterSpec(
        tuple(shape),
        opts.order,
        opts.mode,
        opts.pad,
        opts.cval,
        depth,
        whole,
        tuple(spans),
        filtered,
        dtype.name,
    )
    key = (name, *idx)
    if source is not None:
        task = Task(key, _run_prefilter_reading, executor, spec, [ax[2] for ax in axes], source)
    else:
        deps = [(array.name, *k) for k in itertools.product(*(ax[1] for ax in axes))]
        task = Task(key, _run_prefilter, executor, spec, [ax[2] for ax in axes], *_refs(deps))
    infos = tuple(((s,), (e - s,)) for s, e in spans)
    return key, task, infos


def coefficient_dtype(executor, input_dtype, order: int, nfiltered: int) -> np.dtype:
    """The dtype of the spline coefficients ``executor`` computes for a resampling of an
    ``input_dtype`` array at ``order`` with ``nfiltered`` filtered axes: float64 unless the
    backend says otherwise (its ``coefficient_dtype`` method)."""
    choose = getattr(executor, "coefficient_dtype", None)
    if choose is None:
        return np.dtype(np.float64)
    return np.dtype(choose(np.dtype(input_dtype), order, nfiltered))


def spline_coefficients(
    array: da.Array,
    options: ResampleOptions,
    depth: int | None = None,
    pad: int | None = None,
    batch_axes: tuple[int, ...] = (),
    executor=None,
    dtype=None,
):
    """B-spline coefficients of ``array`` as scipy computes them (float64), chunked like the
    input, with scipy's 12-sample pre-padding added to the end chunks where the mode has it.

    Parameters
    ----------
    array : dask.array.Array
    options : ResampleOptions
        ``order`` (2-5), ``mode`` and ``cval`` decide the filter's boundary handling.
    depth : int, optional
        Halo per side; by default :func:`~transfuse.executors.spline.halo_depth` for the
        filtered axes (1e-10 x max|input| in the worst case).
    pad : int, optional
        Pre-padding per side; by default ``options.pad`` (what interpolation needs). ``pad=0``
        gives exactly ``scipy.ndimage.spline_filter(array, order, mode=mode)``.
    batch_axes : tuple of int
        Axes left unfiltered and unpadded (``spline_filter1d`` filters one axis this way).
    executor : optional
        The backend doing the per-chunk work (default: the configured one).
    dtype : optional
        The coefficients' dtype (default float64; resampling passes ask the backend,
        :func:`coefficient_dtype`).
    """
    if executor is None:
        from . import get_executor

        executor = get_executor()
    order, mode = options.order, options.mode
    pad = options.pad if pad is None else int(pad)
    if pad < 0:
        raise ValueError(f"pad={pad!r} must be a non-negative integer")
    shape, chunks = array.shape, array.chunks
    filtered = tuple(a not in batch_axes for a in range(len(shape)))
    nfiltered = max(1, sum(filtered))
    depth = halo_depth(order, ndim=nfiltered) if depth is None else int(depth)
    if depth < 0:
        raise ValueError(f"depth={depth!r} must be a non-negative integer")
    pads = axis_pads(pad, len(shape), batch_axes)
    coef_chunks = coefficient_chunks(chunks, pads)
    whole = tuple(
        filter_axis_whole(n, pad, depth, len(c)) for n, c in zip(shape, chunks, strict=True)
    )
    cval = options.cval if pad else 0.0
    dtype = np.dtype(np.float64 if dtype is None else dtype)
    name = "spline-coefficients-" + tokenize(
        array.name, order, mode, pad, cval, depth, whole, chunks, filtered, executor.name, dtype.str
    )
    source = array.name
    per_axis = [
        _filter_axis_plan(n, c, cc, p, depth if f else 0, w and f, mode)
        for n, c, cc, p, f, w in zip(shape, chunks, coef_chunks, pads, filtered, whole, strict=True)
    ]
    dsk = {}
    for idx in itertools.product(*(range(len(c)) for c in coef_chunks)):
        axes = [per_axis[a][i] for a, i in enumerate(idx)]
        spec = PrefilterSpec(
            tuple(shape),
            order,
            mode,
            pad,
            options.cval,
            depth,
            whole,
            tuple(a[0] for a in axes),
            filtered,
            dtype.name,
        )
        deps = [(source, *k) for k in itertools.product(*(a[1] for a in axes))]
        key = (name, *idx)
        dsk[key] = Task(key, _run_prefilter, executor, spec, [a[2] for a in axes], *_refs(deps))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[array])
    meta = executor.meta(dtype, len(shape))
    return da.Array(graph, name, coef_chunks, dtype=dtype, meta=meta)


def _field_reads(coef, windows: FieldWindows):
    """Per output chunk row: ``[window, keys]``, the padded coefficient box it reads with
    where the chunks holding it sit, and those chunks' keys."""
    edges = [np.concatenate([[0], np.cumsum(c)]) for c in coef.chunks[1:]]
    ncomp = coef.shape[0]
    rows = []
    for start, stop, empty in zip(
        windows.start.tolist(), windows.stop.tolist(), windows.empty.tolist(), strict=True
    ):
        if empty:  # only cval is read: any one sample will do
            start, stop = [0] * len(edges), [0] * len(edges)
        else:  # a sample more each side: scipy's edge rules then see the whole array's
            start = [max(a - 1, 0) for a in start]
            stop = [min(b + 1, int(e[-1]) - 1) for b, e in zip(stop, edges, strict=True)]
        ids = [
            range(int(np.searchsorted(e, a, "right")) - 1, int(np.searchsorted(e, b, "right")))
            for e, a, b in zip(edges, start, stop, strict=True)
        ]
        infos = [
            (tuple(int(e[i]) for i in r), tuple(int(e[i + 1] - e[i]) for i in r))
            for e, r in zip(edges, ids, strict=True)
        ]
        ranges = [(0, ncomp - 1), *zip(start, stop, strict=True)]
        keys = [(coef.name, 0, *k) for k in itertools.product(*ids)]
        rows.append(((ranges, infos), keys))
    return rows


def _whole_field_reads(coef, nrows):
    """Rows reading every chunk (a pass planned without windows)."""
    full = FieldWindows(
        np.zeros((nrows, coef.ndim - 1), dtype=np.int64),
        np.tile(np.array(coef.shape[1:], dtype=np.int64) - 1, (nrows, 1)),
        np.zeros(nrows, dtype=bool),
    )
    return _field_reads(coef, full)


def _stage_inputs(stages, mode, field_windows=(), nrows=0):
    """Per stage: how its data reaches the tasks. Returns the job's stages without data,
    a function from (row, block index) to the per-stage inputs (keys), and the
    collections (field coefficients, coordinate arrays) the layer depends on."""
    light, collections = [], []
    per_block = []
    windows = dict(field_windows)
    for i, stage in enumerate(stages):
        if isinstance(stage, FieldStage) and stage.chunked:
            coef = stage.coefficients
            collections.append(coef)
            light.append(dataclasses.replace(stage, coefficients=None))
            reads = (
                _field_reads(coef, windows[i]) if i in windows else _whole_field_reads(coef, nrows)
            )
            per_block.append((i, "window", reads))
        elif isinstance(stage, FieldStage):
            coef = stage.coefficients
            name = "field-coefficients-" + tokenize(stage.token)
            collections.append(da.from_array(coef, chunks=coef.shape, name=name))
            light.append(dataclasses.replace(stage, coefficients=None))
            per_block.append((i, "const", (name, *(0,) * coef.ndim)))
        elif isinstance(stage, CoordinateArrayStage):
            arr = stage.array
            if not isinstance(arr, da.Array):
                arr = da.from_array(
                    np.asarray(arr, dtype=np.float64),
                    chunks=((arr.shape[0],), *stage.output_chunks),
                    name="coordinates-" + stage.key,
                )
            elif arr.dtype != np.float64:
                arr = arr.astype(np.float64)
            collections.append(arr)
            light.append(dataclasses.replace(stage, array=None))
            per_block.append((i, "block", arr.name))
        else:
            light.append(stage)

    def inputs(row, idx, all_cval):
        # grid-constant still weighs cval by each point's taps: it needs the coordinates,
        # so every stage's data, even where every tap reads cval
        needed = not all_cval or mode == "grid-constant"
        if not per_block or not needed:
            return _nothing(len(stages))
        out = [None] * len(stages)
        for i, kind, key in per_block:
            if kind == "window":
                window, keys = key[row]
                out[i] = List(window, List(*_refs(keys)))
            elif kind == "const":
                out[i] = TaskRef(key)
            else:
                out[i] = TaskRef((key, 0, *idx))
        return _argument(out)

    return tuple(light), inputs, collections


#: Points evaluated at most, per pass, to confirm domain risks while building the graph.
DOMAIN_CHECK_POINTS = 2**22


def check_domains(p, executor) -> None:
    """Evaluate the blocks where the planner's bounds say an expression may leave its
    domain, so that a map giving NaN or infinite coordinates fails when the graph is
    built, not inside a task. Skipped for coordinate arrays (reading them is a compute),
    for backends without ``coordinates`` and beyond :data:`DOMAIN_CHECK_POINTS` points."""
    evaluate = getattr(executor, "coordinates", None)
    if not p.domain_risk or evaluate is None or isinstance(p.stages[0], CoordinateArrayStage):
        return
    budget = DOMAIN_CHECK_POINTS
    for idx in p.domain_risk:
        box = p.footprints[idx].box
        size = int(np.prod([e - s for s, e in box]))
        if size > budget:
            return
        budget -= size
        evaluate(p.stages, box)  # raises ValueError naming the box


def _map_block(name, mode, row, idx, all_cval):
    """The shared map's block for output chunk ``idx`` (none for an all-cval chunk)."""
    return (
        List(TaskRef((name, 0, *idx))) if not all_cval or mode == "grid-constant" else _nothing(1)
    )


def _shared_map(p, stages, inputs, executor):
    """With ``share_map``: a layer computing the fused map's coordinates once per output
    chunk, under a key of the map alone (stages, output chunks, backend), so that images
    resampled through the same map in one ``dask.compute`` share it. Returns the layer's
    name, its tasks and the job stages reading it (None when sharing does not pay: an
    affine map is cheaper to recompute than to pass around)."""
    if len(p.stages) < 2 or getattr(executor, "coordinates", None) is None:
        return None
    if isinstance(p.stages[0], CoordinateArrayStage):
        return None
    name = "fused-coordinates-" + tokenize(
        tuple(s.token for s in p.stages), p.output.shape, p.output.chunks, executor.name
    )
    # a task for every chunk, whatever this image's mode needs: the layer's content must be
    # the same in every image that has its name (dask culls the tasks nobody reads)
    dsk = {}
    for row, (idx, fp) in enumerate(p.footprints.items()):
        key = (name, 0, *idx)
        dsk[key] = Task(key, _run_coordinates, executor, stages, fp.box, inputs(row, idx, False))
    ndim_in = len(p.input.shape)
    reader = (CoordinateArrayStage(None, p.output.chunks, name),)
    return name, dsk, reader, ndim_in


def resample_pass(p, array: da.Array, executor, share_map: bool = False, dest=None) -> da.Array:
    """One pass of a physical plan as a dask array whose graph starts at ``array``
    (``share_map``: see :func:`_shared_map`). With ``dest`` (a numpy array of the pass's
    output shape and dtype, for an in-process scheduler only: see
    :mod:`.in_memory`) each task writes its chunk into its box of ``dest`` and returns
    that view; the keys are then this graph's own, never a cached result's."""
    if 0 in p.output.shape:
        return da.empty(p.output.shape, chunks=p.output.chunks, dtype=p.output.dtype)
    check_domains(p, executor)
    opts = p.options
    coef = (
        spline_coefficients(
            array,
            opts,
            batch_axes=p.batch_axes,
            executor=executor,
            dtype=coefficient_dtype(
                executor, array.dtype, opts.order, array.ndim - len(p.batch_axes)
            ),
        )
        if p.needs_prefilter
        else array
    )
    stages, inputs, collections = _stage_inputs(
        p.stages, opts.mode, p.field_windows, len(p.footprints)
    )
    shared = _shared_map(p, stages, inputs, executor) if share_map else None
    if shared is not None:  # the tasks read the shared map's block instead of the stages
        map_name, map_dsk, stages, ndim_in = shared
        layer = HighLevelGraph.from_collections(map_name, map_dsk, dependencies=collections)
        chunks = ((ndim_in,), *p.output.chunks)
        collections = [da.Array(layer, map_name, chunks, dtype=np.float64)]
        inputs = functools.partial(_map_block, map_name, opts.mode)
    job = ResampleJob(
        stages, p.input.shape, opts, np.dtype(p.output.dtype), p.batch_axes, p.plane_stages
    )
    choice = prefilter_choice() if p.needs_prefilter else "auto"
    where = () if choice == "auto" else (choice,)  # the default keeps its keys
    ratio = SPARSE_RATIO
    if choice == "auto" and p.needs_prefilter:
        if _shared_coefficient_bytes(p, coef) > SHARED_COEFFICIENT_BYTES:
            ratio = 1 / LOCAL_COST_RATIO
            where = ("bounded", SHARED_COEFFICIENT_BYTES, LOCAL_COST_RATIO)
    source = local_source = None
    direct = reads_choice() == "direct"
    if direct and not p.needs_prefilter and not any(p.pads):
        source = zarr_source(array)
    elif direct and p.needs_prefilter and (choice == "local" or where[:1] == ("bounded",)):
        local_source = zarr_source(array)  # tasks filtering their own window read it
    if source is not None or local_source is not None:
        where += ("direct",)
        check = getattr((source or local_source)[1], "check_config", None)
        if check is not None:  # the reader's own settings, refused now rather than in a task
            check()
    name = "resample-" + tokenize(coef.name, p.token, executor.name, shared is not None, *where)
    into = {}
    if dest is not None:  # views of one caller's array: keys no other graph may share
        name = "resample-into-" + tokenize(name, uuid.uuid4().hex)
        into = {"dest": dest}
    local_name = "spline-coefficients-local-" + tokenize(name)
    depth = halo_depth(opts.order, ndim=max(1, p.input.ndim - len(p.batch_axes)))
    needs_prefilter = p.needs_prefilter and choice != "shared"
    sharing = _sharing(p) if needs_prefilter else 1.0
    pads = p.pads
    ref = None if source is None else TaskRef(source[0])  # one object, pickled once
    local_ref = None if local_source is None else TaskRef(local_source[0])
    dsk = {}
    any_local = any_shared = False
    for row, (idx, fp) in enumerate(p.footprints.items()):
        if fp.axes is None:
            key = (name, *idx)
            packed = pack_footprint(fp)
            task_inputs = inputs(row, idx, True)
            dsk[key] = Task(key, _run_resample, executor, job, packed, (), task_inputs, **into)
            continue
        local = None
        if needs_prefilter:
            local = _local_prefilter(
                p,
                idx,
                fp,
                array,
                executor,
                depth,
                local_name,
                sharing,
                choice == "local",
                ratio,
                local_ref,
            )
        if local is not None:
            key, task, infos = local
            dsk[key] = task
            deps = [key]
            any_local = True
        else:
            infos = tuple(
                _axis_info(p.coefficient_chunks[a], pads[a], tuple(w.chunks))
                for a, w in enumerate(fp.axes)
            )
            deps = [] if source is not None else [(coef.name, *k) for k in fp.dependencies]
            any_shared = True
        key = (name, *idx)
        task_inputs = inputs(row, idx, False)
        packed = pack_footprint(fp)
        if source is not None:
            args = (executor, job, packed, infos, task_inputs, ref)
            task = Task(key, _run_resample_reading, *args, **into)
        else:
            args = (executor, job, packed, infos, task_inputs, *_refs(deps))
            task = Task(key, _run_resample, *args, **into)
        dsk[key] = task
    if source is not None:  # the tasks read the stored array, not dask's chunks of it
        any_shared = False
    reads_array = any_local and local_source is None
    dependencies = ([coef] if any_shared else []) + collections + ([array] if reads_array else [])
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=dependencies)
    if source is not None:
        graph = _with_layer(graph, name, array.dask, source[0])
    elif local_source is not None and any_local:
        graph = _with_layer(graph, name, array.dask, local_source[0])
    meta = executor.meta(p.output.dtype, p.output.ndim)
    return da.Array(graph, name, p.output.chunks, meta=meta)


def _with_layer(graph: HighLevelGraph, name: str, other: HighLevelGraph, layer: str):
    """``graph`` with ``other``'s ``layer`` added as a dependency of its layer ``name``."""
    layers = {**graph.layers, layer: other.layers[layer]}
    dependencies = {**graph.dependencies, layer: set()}
    dependencies[name] = set(graph.dependencies[name]) | {layer}
    return HighLevelGraph(layers, dependencies)


@contextlib.contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector while a graph is built: building allocates
    tens of thousands of small objects (tasks, footprints) that are never cyclic garbage,
    and full collections over them cost more than the building itself (measured: 0.45-0.67
    s against 0.19-0.22 s for 10,000 chunks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_dask(plan, array: da.Array, executor, share_map: bool = False, dest=None) -> da.Array:
    """The plan's result as a dask array whose graph starts at ``array`` (``share_map``:
    non-affine maps are computed in a layer of their own, shared by images resampled
    through the same map; see :func:`transfuse.resample`; ``dest``: the last pass writes
    into it, see :func:`resample_pass`)."""
    current = array
    last = len(plan.passes) - 1
    for i, p in enumerate(plan.passes):
        for_pass = getattr(executor, "for_pass", None)  # the "cpu" backend's cold start
        runner = executor if for_pass is None else for_pass(p)
        current = resample_pass(p, current, runner, share_map, dest if i == last else None)
    return current

"""The compiled path of the ``"cpu"`` backend: one output chunk through the kernel of
:mod:`.kernels_interp` (coordinates and interpolation in one loop, no coordinate array).

:func:`kernel_spec` decides, once per pass (cached per job), whether the kernel applies
and packs the pass's map for it; :func:`resample` runs one chunk: it reads the window
straight from the input chunk when there is one (a view, no copy), else assembles the
region the taps read once (a view of the array instead, no copy, when the chunks are
views of one numpy array), builds the per-axis tap tables (mode rule and chunk layout in
one lookup) and calls the kernel, which releases the GIL. It returns None where the
kernel does not apply, and the caller then uses the reference path.

Applies to: passes whose map is one affine stage (matrix or separable form, a lazy view
of the grid included, slice by slice along batch axes too) or one coordinate array;
orders 0-5; the 8 modes; 1 to 3 input and output axes; real input dtypes. A chain of
stages (affine @ displacement field @ expression ...) runs as a coordinate array computed
block by block by the compiled stages of :mod:`.kernels_chain` (no coordinate array of the
chunk), each block interpolated by the kernel; a chain those do not evaluate gets its
coordinates per chunk from :mod:`.stages` (numpy, each displacement field sampled by the
compiled kernel through :mod:`.kernel_ndi`).
"""

from __future__ import annotations

import dataclasses
import threading
import weakref

import numpy as np

from ..planner.physical import AffineStage, CoordinateArrayStage
from . import kernel_ndi, kernel_prep, kernels_chain
from . import kernels_interp as K
from . import stages as stage_eval
from .blocks import assemble_region, region_view

__all__ = ["AVAILABLE", "KernelSpec", "describe", "kernel_spec", "resample"]

AVAILABLE = K.AVAILABLE

#: Most axes the kernel handles (input, output and grid).
MAX_NDIM = 3


@dataclasses.dataclass(frozen=True, eq=False)
class KernelSpec:
    """A pass's map and options packed for the kernel (every array padded to 3 axes)."""

    form: int
    lin: np.ndarray
    off: np.ndarray
    opk: np.ndarray
    opv: np.ndarray
    gsrc: np.ndarray
    gstart: np.ndarray
    gstep: np.ndarray
    crow: np.ndarray
    interp: np.ndarray
    shape: np.ndarray
    mode: int
    order: int
    pad: int
    cval: float
    out_dtype: np.dtype
    n_in: int
    n_out: int

    def coords_spec(self, coords):
        return (
            self.form,
            self.lin,
            self.off,
            self.opk,
            self.opv,
            self.gsrc,
            self.gstart,
            self.gstep,
            coords,
            self.crow,
        )


_NO_COORDS = np.zeros((1, 1, 1, 1))

#: Most bytes of scratch (window and float64 result) a thread keeps between its chunks;
#: a larger window or result is allocated for its chunk alone.
SCRATCH_BYTES = 64 * 2**20
_SCRATCH = threading.local()


def _scratch(slot: str, shape, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` that this thread reuses chunk after chunk (held
    until the thread ends, at most :data:`SCRATCH_BYTES` per slot). A fresh array per chunk
    costs page faults on every first touch, and where ``MALLOC_TRIM_THRESHOLD_`` is set
    (dask's nanny sets it) one ``mmap``/``munmap`` pair per array."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > SCRATCH_BYTES:
        return np.empty(shape, dtype)
    held = _SCRATCH.__dict__.setdefault("held", {})
    raw = held.get(slot)
    if raw is None or raw.nbytes < nbytes:
        raw = held[slot] = np.empty(max(nbytes, 8), dtype=np.uint8)
    return raw[:nbytes].view(dtype).reshape(shape)


_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _reason(job) -> str | None:
    """Why the kernel does not apply to ``job`` (None when it does)."""
    if not AVAILABLE:
        return "numba is not installed"
    stages = job.stages
    first = stages[0]
    n_in = len(job.input_shape)
    if n_in > MAX_NDIM:
        return f"{n_in} input axes (the kernel handles up to {MAX_NDIM})"
    if len(stages) > 1:
        return _chain_reason(job)
    if isinstance(first, CoordinateArrayStage):
        known = first.array is not None
        if (known and first.ndim_in != n_in) or len(first.output_chunks) > MAX_NDIM:
            return "coordinate array of more than 3 output axes"
        return None
    if not isinstance(first, AffineStage):
        return f"a {type(first).__name__} (not compiled yet)"
    if first.linear.shape[1] > MAX_NDIM or first.ndim_out > MAX_NDIM:
        return "more than 3 output axes"
    if first.form == "separable" and first.linear.shape[0] != first.linear.shape[1]:
        return "separable map changing the rank"
    if job.batch_axes and (first.form != "matrix" or first.view is not None):
        return "slice-by-slice pass of a separable map"
    if np.dtype(job.dtype).kind not in "biuf":
        return f"output dtype {np.dtype(job.dtype)}"
    return None


def _chain_reason(job) -> str | None:
    """Why a chain of stages cannot run as a coordinate array (None when it can)."""
    first = job.stages[0]
    if job.batch_axes:
        return "slice-by-slice pass of a chain"
    if not isinstance(first, AffineStage | CoordinateArrayStage):
        return f"a chain starting with a {type(first).__name__}"
    n_out = len(first.output_chunks) if isinstance(first, CoordinateArrayStage) else first.ndim_out
    if n_out > MAX_NDIM:
        return "more than 3 output axes"
    if np.dtype(job.dtype).kind not in "biuf":
        return f"output dtype {np.dtype(job.dtype)}"
    return None


def _build_spec(job) -> KernelSpec:
    opts = job.options
    first = job.stages[0]
    n_in = len(job.input_shape)
    lead = MAX_NDIM - n_in
    lin = np.zeros((3, 3))
    off = np.zeros(3)
    opk = np.zeros(0, dtype=np.int64)
    opv = np.zeros((0, 3))
    gsrc = np.full(3, -1, dtype=np.int64)
    gstart = np.zeros(3, dtype=np.int64)
    gstep = np.zeros(3, dtype=np.int64)
    crow = np.full(3, -1, dtype=np.int64)
    if len(job.stages) > 1 or isinstance(first, CoordinateArrayStage):
        form = K.FORM_COORDS
        n_out = (
            len(first.output_chunks) if isinstance(first, CoordinateArrayStage) else first.ndim_out
        )
        for h in range(n_in):
            crow[lead + h] = h
    else:
        n_grid = first.linear.shape[1]
        n_out = first.ndim_out
        glead = MAX_NDIM - n_grid
        olead = MAX_NDIM - n_out
        if first.view is None:
            for a in range(n_grid):
                gsrc[glead + a] = olead + a
                gstep[glead + a] = 1
        else:
            for a, (j, start, step) in enumerate(first.view.axes):
                gsrc[glead + a] = -1 if j is None else olead + j
                gstart[glead + a] = int(start)
                gstep[glead + a] = int(step)
        if first.form == "matrix":
            form = K.FORM_MATRIX
            lin[lead:, glead:] = first.linear
            off[lead:] = first.offset
        else:
            form = K.FORM_SEPARABLE
            opk = np.array([0 if kind == "add" else 1 for kind, _ in first.ops], dtype=np.int64)
            opv = np.zeros((len(first.ops), 3))
            for q, (kind, vec) in enumerate(first.ops):
                opv[q, :lead] = 0.0 if kind == "add" else 1.0
                opv[q, lead:] = vec
    interp = np.zeros(3, dtype=np.int64)
    for h in range(n_in):
        interp[lead + h] = 0 if h in job.batch_axes else 1
    shape = np.ones(3, dtype=np.int64)
    shape[lead:] = job.input_shape
    # float64, as scipy computes every point, then cast as scipy does; a float32 result
    # of float32 samples is written by the kernel itself (the same rounding): the kernel
    # then has one specialisation per input family in common use (float32 samples into
    # float32, float64 into float64), not one per input x output dtype pair
    out_dtype = np.dtype(np.float64)
    return KernelSpec(
        form,
        lin,
        off,
        opk,
        opv,
        gsrc,
        gstart,
        gstep,
        crow,
        interp,
        shape,
        K.MODE_CODES[opts.mode],
        opts.order,
        opts.pad,
        opts.cval,
        out_dtype,
        n_in,
        n_out,
    )


def kernel_spec(job) -> KernelSpec | None:
    """The kernel's view of ``job`` (cached per job), or None when it does not apply."""
    try:
        return _SPECS[job]
    except KeyError:
        pass
    spec = None if _reason(job) is not None else _build_spec(job)
    with _LOCK:
        _SPECS[job] = spec
    return spec


def describe(job) -> str:
    """Which kernel runs ``job``'s chunks, in words."""
    reason = _reason(job)
    if reason is not None:
        return f"scipy.ndimage per chunk ({reason})"
    first = job.stages[0]
    if len(job.stages) > 1:  # -- chain branch (kernels_chain)
        what = f"{kernels_chain.describe(job.stages)}, then a coordinate-array"
    elif isinstance(first, CoordinateArrayStage):
        what = "coordinate array"
    else:
        what = first.form
    opts = job.options
    batch = f", slice by slice along {job.batch_axes}" if job.batch_axes else ""
    return (
        f"compiled kernel: {what} map, order {opts.order}, mode {opts.mode}, "
        f"{len(job.input_shape)}-D{batch} (numba, GIL released)"
    )


def resample(job, footprint, pieces, layouts, into=None):
    """One output chunk through the compiled kernel, or None (use the reference path).

    With ``into`` (a writable view of the chunk's box in the whole result, ``job.dtype``)
    the kernel writes there when the view is contiguous, else into a buffer this thread
    reuses; the result returned is then ``into`` itself when it holds the chunk, else that
    buffer (or, for an output dtype the kernel does not write, its float64 result) for the
    caller to copy."""
    if footprint.axes is None:  # every point is cval: the reference path fills it
        return None
    spec = kernel_spec(job)
    if spec is None:
        return None
    coords = _NO_COORDS
    if any(p.dtype.kind not in "biuf" for p in pieces):
        return None
    chain = None
    if spec.form == K.FORM_COORDS:
        first = job.stages[0]
        if isinstance(first, CoordinateArrayStage) and first.array is None:
            return None
        # -- chain branch (kernels_chain): coordinates block by block in compiled stages;
        # a chain it does not evaluate keeps the coordinate array of the chunk
        if len(job.stages) > 1:
            chain = kernels_chain.program(job.stages, footprint.box)
        if chain is None:
            if len(job.stages) > 1:
                arr = stage_eval.coordinates(job.stages, footprint.box, kernel_ndi)
            else:
                arr = first.array
            box_shape = tuple(e - s for s, e in footprint.box)
            coords = np.ascontiguousarray(arr, dtype=np.float64).reshape(
                (spec.n_in,) + (1,) * (MAX_NDIM - len(box_shape)) + box_shape
            )
    prepared = kernel_prep.sources(job, footprint, layouts)
    if prepared is None:
        return None
    region = [(int(lo), int(hi)) for lo, hi in prepared[2]]
    counts = [len(w.chunks) for w in footprint.axes]
    # a numpy input's chunks: a view, no copy (benchmarks/bench_windows.py, 256^3 float32
    # in chunks of 64^3, 2 threads, medians: 0.26 against 0.32 s at order 0, 0.32
    # against 0.32 s at order 1)
    window = region_view(pieces, counts, layouts, region)
    if window is None:
        window = assemble_region(
            pieces,
            counts,
            layouts,
            region,
            empty=lambda shape, dtype: _scratch("window", shape, dtype),
        )
    buf, strides = K.flat_buffer(window)
    packed = kernel_prep.tables(prepared, strides, spec.interp, spec.order)
    box = [(0, 1)] * (MAX_NDIM - len(footprint.box)) + list(footprint.box)
    out_shape = tuple(e - s for s, e in box)
    in_place = False
    if np.dtype(job.dtype) not in (spec.out_dtype, buf.dtype):  # cast by the caller
        out = _scratch("out", out_shape, spec.out_dtype)
    elif into is None:  # returned as it is
        # float32 samples into a float32 result: the kernel rounds each point as the cast
        # after it would, without a float64 array and a pass over it
        out = np.empty(out_shape, dtype=job.dtype)
    elif into.flags.c_contiguous:
        out, in_place = into.reshape(out_shape), True
    else:  # copied into ``into`` by the caller; no fresh pages to fault in per chunk
        out = _scratch("result", out_shape, job.dtype)
    if chain is not None:  # -- chain branch (kernels_chain)
        interp_args = (buf, None, None, spec.shape, spec.interp, spec.pad, spec.mode)
        interp_args += (spec.order, spec.cval)
        if not chain.interpolate(interp_args, spec.coords_spec, out, packed):
            return None
        return into if in_place else out.reshape(tuple(e - s for s, e in footprint.box))
    ok = K.interpolate(
        buf,
        None,
        None,
        spec.shape,
        spec.interp,
        spec.pad,
        spec.mode,
        spec.order,
        spec.cval,
        spec.coords_spec(coords),
        [s for s, _ in box],
        out,
        packed=packed,
    )
    if not ok:
        return None
    return into if in_place else out.reshape(tuple(e - s for s, e in footprint.box))

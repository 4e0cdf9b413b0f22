"""The ``"gpu"`` backend: the per-chunk work on a CUDA device (numba.cuda kernels,
cupy arrays), or on the host stand-in running the same kernels in numba-cuda's simulator.

Per output chunk (:meth:`GPUExecutor.resample_chunk`): the chunks the footprint reads are
moved to the device (numpy chunks are copied, cupy chunks used as they are) and the
region the taps read is assembled there; per axis a small table says where each tap
reads (the mode's tap rule and the chunk layout, built on the host: a few hundred
integers); then one kernel computes every point:

* a pass whose map is one affine stage (matrix or separable, through a lazy view of the
  grid, slice by slice along batch axes too) computes each point's coordinates inside
  the kernel: no coordinate array exists;
* any other map (fields, expressions, coordinate arrays, chains of them) has its
  coordinates computed on the device (:mod:`.gpu_stages`: array operations, fields
  sampled by the same kernel from their spline coefficients), then the kernel
  interpolates at them (``map_coordinates`` style).

Per coefficient chunk (:meth:`GPUExecutor.prefilter_chunk`): the filter window the graph
builder asks for is gathered on the device and filtered axis by axis, one thread per line
(:data:`~.gpu_kernels.PREFILTER`). float32 (and float16) inputs get float32 coefficients.

Accuracy contract (against scipy.ndimage on the whole array, N(0, 1) data): float64
inputs as the CPU backends — orders 0 and 1 equal scipy in the simulator (bit for bit
there; a device's fused multiply-add may move the last bit: the device check measures
it), orders 2-5 within 1e-8 x max|input|; float32 inputs at orders 2-5 within
1e-5 x max|input| (float32 coefficients, float64 arithmetic in the kernels).

Device memory is bounded: at most ``transfuse.gpu.chunks_in_flight`` (dask config,
default 2) tasks do device work at once per device, and a task whose chunk needs more
than the device has free raises :class:`~.gpu_device.DeviceMemoryError` before
allocating. (Results stay on the device until dask hands them to their consumers: a graph
that keeps many device chunks alive, e.g. computing a whole volume into one cupy array,
holds them all; stream results to the host, or store them, to stay within the bound.)

Chunks the kernels do not handle (more than 3 axes, complex numbers, a point past scipy's
integer range, every point reading cval) are computed by the reference backend on the
host and copied to the device; :attr:`GPUExecutor.fallbacks` counts them by reason.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import threading
import weakref

import numpy as np
from scipy import ndimage

from ..planner.boundary import CVAL, tap_source_index
from ..planner.options import MODES
from ..planner.physical import AffineStage, CoordinateArrayStage, FieldStage
from . import gpu_kernels as K
from . import gpu_stages
from .blocks import assemble_region
from .gpu_device import (
    CONFIG_IN_FLIGHT,
    INSTALL_HINT,
    DeviceMemoryError,
    GPUUnavailableError,
    chunks_in_flight,
    device_slots,
    select_device,
)
from .scipy_backend import ScipyExecutor
from .spline import filter_indices, float32_coefficients_allowed, padded_cval

__all__ = ["GPUExecutor", "POLES"]

#: Every pole of scipy's B-spline prefilter per order (``get_filter_poles``).
POLES = {
    2: (-0.171572875253809902396622551580603843,),
    3: (-0.267949192431122706472553658494127633,),
    4: (-0.361341225900220177092212841325675255, -0.013725429297339121360331226939128204),
    5: (-0.430575347099973791851434783493520110, -0.043096288203264653822712376822550182),
}

#: scipy's prefilter initialisation per mode of ``spline_filter1d`` (whole axes use the
#: mode; axes filtered with a halo use ``mirror``, see :mod:`.spline`).
_FILTER_INIT = {
    "mirror": K.FILTER_MIRROR,
    "reflect": K.FILTER_REFLECT,
    "nearest": K.FILTER_REFLECT,
    "grid-wrap": K.FILTER_WRAP,
}

MAX_NDIM = 3


@functools.cache
def _reflect_init() -> int:
    """The reflect initialisation the installed scipy computes: before scipy 1.18
    (scipy/scipy#24615) its causal sum read a partial sum on its last term, which shows on
    short axes (1e-4 at 3 samples). The reference is the installed scipy, so match it."""
    x = np.array([1.0, -2.0, 0.5])
    ideal = ndimage.spline_filter1d(np.pad(x, 60, mode="symmetric"), 3, mode="mirror")[60:-60]
    got = ndimage.spline_filter1d(x, 3, mode="reflect")
    return K.FILTER_REFLECT if np.abs(got - ideal).max() < 1e-12 else K.FILTER_REFLECT_ALIASED


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
    """How a job's chunks run on the device (``reason`` set: they do not)."""

    reason: str | None = None
    form: int = K.FORM_MATRIX
    lin: np.ndarray | None = None
    off: np.ndarray | None = None
    opk: np.ndarray | None = None
    opv: np.ndarray | None = None
    grid: np.ndarray | None = None
    interp: np.ndarray | None = None
    shape: np.ndarray | None = None
    n_in: int = 0
    nops: int = 0


def _reason(job) -> str | None:
    """Why the kernels do not apply to ``job`` (None when they do)."""
    n_in = len(job.input_shape)
    if n_in > MAX_NDIM:
        return f"{n_in} input axes (the kernel handles up to {MAX_NDIM})"
    if np.dtype(job.dtype).kind not in "biuf":
        return f"output dtype {np.dtype(job.dtype)}"
    first = job.stages[0]
    single_affine = len(job.stages) == 1 and isinstance(first, AffineStage)
    if single_affine:
        if first.linear.shape[1] > MAX_NDIM or first.ndim_out > MAX_NDIM:
            return "more than 3 output axes"
        if first.form == "separable" and first.linear.shape[0] != first.linear.shape[1]:
            return "separable map changing the rank"
    if job.batch_axes and not (single_affine and first.form == "matrix" and first.view is None):
        return "slice-by-slice pass of a map other than a matrix"
    for stage in job.stages:
        if isinstance(stage, FieldStage) and len(stage.grid_shape) > MAX_NDIM:
            return "a displacement field of more than 3 axes"
    if isinstance(first, CoordinateArrayStage) and len(first.output_chunks) > MAX_NDIM:
        return "coordinate array of more than 3 output axes"
    if isinstance(first, AffineStage) and first.ndim_out > MAX_NDIM:
        return "more than 3 output axes"
    return None


def _build_plan(job) -> _Plan:
    reason = _reason(job)
    if reason is not None:
        return _Plan(reason)
    first = job.stages[0]
    n_in = len(job.input_shape)
    lead = MAX_NDIM - n_in
    lin, off = np.zeros((3, 3)), np.zeros(3)
    opk, opv = np.zeros(1, dtype=np.int64), np.zeros((1, 3))
    nops = 0
    grid = np.zeros((4, 3), dtype=np.int64)
    grid[0] = -1
    grid[3] = -1
    if len(job.stages) == 1 and isinstance(first, AffineStage):
        n_grid = first.linear.shape[1]
        glead, olead = MAX_NDIM - n_grid, MAX_NDIM - first.ndim_out
        if first.view is None:
            for a in range(n_grid):
                grid[0, glead + a], grid[2, glead + a] = olead + a, 1
        else:
            for a, (j, start, step) in enumerate(first.view.axes):
                grid[0, glead + a] = -1 if j is None else olead + j
                grid[1, glead + a], grid[2, glead + a] = int(start), int(step)
        if first.form == "matrix":
            form = K.FORM_MATRIX
            lin[lead:, glead:] = first.linear
            off[lead:] = first.offset
        else:
            form = K.FORM_SEPARABLE
            nops = len(first.ops)
            opk = np.zeros(max(nops, 1), dtype=np.int64)  # never empty: device arrays
            opv = np.zeros((max(nops, 1), 3))
            for q, (kind, vec) in enumerate(first.ops):
                opk[q] = 0 if kind == "add" else 1
                opv[q, :lead] = 0.0 if kind == "add" else 1.0
                opv[q, lead:] = vec
    else:
        form = K.FORM_COORDS
        for h in range(n_in):
            grid[3, lead + h] = h
    interp = np.zeros(3, dtype=np.int64)
    for h in range(n_in):
        interp[lead + h] = 0 if h in job.batch_axes else 1
    shape = np.ones(3, dtype=np.int64)
    shape[lead:] = job.input_shape
    return _Plan(None, form, lin, off, opk, opv, grid, interp, shape, n_in, nops)


def _tap_tables(job, footprint, layouts):
    """Per axis: the domain index each tap index of the window (one spare each side) reads
    (``CVAL``; ``None`` where no chunk read holds it), the first tap index in the kernel's
    frame, and the domain range ``(lo, hi)`` the held ones span."""
    opts = job.options
    out = []
    for h, w in enumerate(footprint.axes):
        batch = h in job.batch_axes
        pad = 0 if batch else opts.pad
        idx = np.arange(w.lo - 1, w.hi + 2, dtype=np.int64)
        src = idx if batch else tap_source_index(idx, job.input_shape[h], opts.mode, pad)
        lay = layouts[h]
        valid = src != CVAL
        s = np.where(valid, src, lay.starts[0])
        which = np.clip(np.searchsorted(lay.starts, s, side="right") - 1, 0, len(lay.starts) - 1)
        held = valid & (s >= lay.starts[which]) & (s < lay.starts[which] + lay.sizes[which])
        if not held.any():
            return None
        kept = s[held]
        out.append((src, held, w.lo - 1 + pad, (int(kept.min()), int(kept.max()))))
    return out


def _table(src, held, lo, stride):
    table = np.where(held, (src - lo) * stride, K.TAP_MISSING)
    return np.where(src == CVAL, K.TAP_CVAL, table).astype(np.int64)


def _pack_tables(tables):
    width = max(len(t) for t in tables)
    tab = np.full((3, width), K.TAP_MISSING, dtype=np.int64)
    for h, t in enumerate(tables):
        tab[h, : len(t)] = t
    return tab, np.array([len(t) for t in tables], dtype=np.int64)


def _cast(xp, values, dtype):
    """:func:`~.scipy_backend.cast_like_scipy` with the array module ``xp``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if dtype.kind == "u":
            t = xp.where(values > 0, values + 0.5, 0.0)
        else:
            t = xp.where(values > 0, values + 0.5, values - 0.5)
        return xp.trunc(xp.clip(t, info.min, info.max)).astype(dtype)
    if dtype.kind == "b":
        t = xp.trunc(xp.clip(values, -(2.0**62), 2.0**62)).astype(np.int64)
        return (t % 256) != 0
    return values.astype(dtype, copy=False)


def _mib(nbytes) -> str:
    return f"{nbytes} bytes" if nbytes < 2**20 else f"{nbytes / 2**20:.1f} MiB"


class GPUExecutor:
    """Executes plans with numba.cuda kernels on a device (see the module docstring).

    Parameters
    ----------
    device : optional
        A :class:`~.gpu_device.CupyDevice` or :class:`~.gpu_device.HostDevice`; by default
        :func:`~.gpu_device.select_device` picks one (or raises
        :class:`~.gpu_device.GPUUnavailableError` saying what to install).
    """

    name = "gpu"

    def __init__(self, device=None):
        self.device = select_device() if device is None else device
        try:
            K.load()
        except ImportError as exc:
            raise GPUUnavailableError(f"executor='gpu' needs numba-cuda: {INSTALL_HINT}") from exc
        self.reference = ScipyExecutor()
        self.fallbacks: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._fields: collections.OrderedDict = collections.OrderedDict()

    def __reduce__(self):  # tasks carry the executor: rebuild it where they run
        return (GPUExecutor, ())

    # -- the protocol ----------------------------------------------------------------------

    def meta(self, dtype, ndim: int):
        return self.device.meta(dtype, ndim)

    def coefficient_dtype(self, input_dtype, order: int, nfiltered: int) -> np.dtype:
        """float32 coefficients for float32/float16 inputs where the accuracy contract
        holds with them in the worst case (:func:`.spline.float32_coefficients_allowed`),
        float64 otherwise."""
        small = np.dtype(input_dtype) in (np.float32, np.float16)
        if small and float32_coefficients_allowed(order, nfiltered):
            return np.dtype(np.float32)
        return np.dtype(np.float64)

    def describe(self, p) -> str:
        """What runs the chunks of the physical pass ``p``, in words."""
        from .base import ResampleJob

        job = ResampleJob(
            p.stages, p.input.shape, p.options, p.output.dtype, p.batch_axes, p.plane_stages
        )
        plan = self._plan(job)
        where = f"device {self.device.name}"
        if plan.reason is not None:
            return f"scipy.ndimage on the host, copied to the {where} ({plan.reason})"
        how = "coordinates in the kernel" if plan.form != K.FORM_COORDS else "device coordinates"
        return f"numba.cuda kernel ({how}), order {p.options.order}, mode {p.options.mode}, {where}"

    def coordinates(self, stages, box):
        """Input coordinates of ``box`` through ``stages`` on the host (the graph builder's
        build-time domain check)."""
        return self.reference.coordinates(stages, box)

    def points(self, stages, p):
        return self.reference.points(stages, p)

    def prefilter_chunk(self, spec, pieces, layouts):
        """One chunk of spline coefficients, filtered on the device."""
        dev = self.device
        xp = dev.xp
        dtype = np.dtype(spec.dtype)
        idx = filter_indices(spec)
        positions = [lay.positions(i) for lay, i in zip(layouts, idx, strict=True)]
        window_shape = tuple(len(i) for i in idx)
        need = sum(_host_bytes(dev, p) for p in pieces) + 2 * int(np.prod(window_shape)) * (
            dtype.itemsize
        )
        with device_slots(dev).hold():
            self._check_memory(need, f"coefficient chunk {tuple(spec.span)}")
            counts = [len(lay.starts) for lay in layouts]
            block = _assemble(dev, [dev.to_device(p) for p in pieces], counts)
            cval = padded_cval(spec.cval, block.dtype)
            window = block[xp.ix_(*[xp.asarray(p) for p in positions])].astype(dtype)
            for axis, i in enumerate(idx):
                m = i == CVAL
                if m.any():
                    sl = [slice(None)] * window.ndim
                    sl[axis] = xp.asarray(m)
                    window[tuple(sl)] = cval
            window = xp.ascontiguousarray(window)
            crops = []
            for axis, (_, pad, filtered, whole, (s, e)) in enumerate(spec.axes()):
                if not filtered:
                    crops.append(slice(0, e - s))
                    continue
                crops.append(
                    slice(s + pad, e + pad) if whole else slice(spec.depth, spec.depth + e - s)
                )
                if window.shape[axis] > 1:
                    mode = (
                        _FILTER_INIT.get(spec.mode, K.FILTER_MIRROR) if whole else K.FILTER_MIRROR
                    )
                    if mode == K.FILTER_REFLECT:
                        mode = _reflect_init()
                    self._filter_axis(window, axis, spec.order, mode)
            out = xp.ascontiguousarray(window[tuple(crops)])
            dev.synchronize()
        return out

    def resample_chunk(self, job, footprint, pieces, layouts):
        """One output chunk (see :class:`~transfuse.executors.base.Executor`)."""
        if footprint.axes is None:
            return self._reference(job, footprint, pieces, layouts, "every point reads cval")
        plan = self._plan(job)
        if plan.reason is not None:
            return self._reference(job, footprint, pieces, layouts, plan.reason)
        if any(np.dtype(p.dtype).kind not in "biuf" for p in pieces):
            return self._reference(job, footprint, pieces, layouts, "non-real input")
        with device_slots(self.device).hold():
            out = self._resample(job, plan, footprint, pieces, layouts)
        if out is None:
            return self._reference(job, footprint, pieces, layouts, "a point the kernel hands back")
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _plan(self, job) -> _Plan:
        try:
            return self._plans[job]
        except KeyError:
            pass
        plan = _build_plan(job)
        with self._lock:
            self._plans[job] = plan
        return plan

    def _reference(self, job, footprint, pieces, layouts, reason):
        with self._lock:
            self.fallbacks[reason] += 1
        dev = self.device
        host = [dev.to_host(p) for p in pieces]
        stages = tuple(
            dataclasses.replace(s, array=dev.to_host(s.array))
            if isinstance(s, CoordinateArrayStage) and s.array is not None
            else s
            for s in job.stages
        )
        job = dataclasses.replace(job, stages=stages)
        out = self.reference.resample_chunk(job, footprint, host, layouts)
        return dev.to_device(out)

    def _check_memory(self, need: int, what: str):
        free = self.device.free_memory()
        if need > free:
            raise DeviceMemoryError(
                f"the {what} needs {_mib(need)} of device memory and {_mib(free)} are free "
                f"on {self.device.name}: use smaller chunks, or lower the dask config "
                f"'{CONFIG_IN_FLIGHT}' (now {chunks_in_flight()}) so fewer chunks are on the "
                "device at once"
            )

    def _filter_axis(self, window, axis, order, init):
        poles = POLES[order]
        gain = 1.0
        for z in poles:
            gain *= (1.0 - z) * (1.0 - 1.0 / z)
        n = window.shape[axis]
        after = int(np.prod(window.shape[axis + 1 :], dtype=np.int64))
        nlines = window.size // n
        flat = window.reshape(-1)
        dev = self.device
        dev.launch(
            K.PREFILTER,
            nlines,
            flat,
            n,
            after,
            nlines,
            dev.to_device(np.array(poles)),
            len(poles),
            gain,
            init,
        )

    def _field_coefficients(self, stage):
        """The field's coefficients on the device (a few kept: every task reads them).
        A chunked field's task holds only its window: not cached (windows differ)."""
        if stage.start is not None or stage.chunked:
            return self.device.to_device(stage.coefficients, dtype=np.float64)
        key = stage.token
        with self._lock:
            if key in self._fields:
                self._fields.move_to_end(key)
                return self._fields[key]
        coef = self.device.to_device(stage.coefficients, dtype=np.float64)
        with self._lock:
            self._fields[key] = coef
            while len(self._fields) > 4:
                self._fields.popitem(last=False)
        return coef

    def _sample_field(self, stage, grid):
        """``map_coordinates(coefficients[k], grid, order, mode, cval, prefilter=False)``
        per component, by the interpolation kernel."""
        dev = self.device
        xp = dev.xp
        coef = self._field_coefficients(stage)
        gshape = coef.shape[1:]
        ndim = len(gshape)
        lead = MAX_NDIM - ndim
        mode = MODES[stage.mode]
        order = stage.order
        reach = 2 * order + 6  # folded or clamped coordinates tap no further out
        tables, tlo = [np.zeros(1, dtype=np.int64)] * lead, [0] * lead
        strides = _c_strides(gshape)
        for h, n in enumerate(gshape):
            idx = np.arange(-reach, n + reach, dtype=np.int64)
            src = tap_source_index(idx, n, mode, 0)
            tables.append(_table(src, src != CVAL, 0, strides[h]))
            tlo.append(-reach)
        tab, tlen = _pack_tables(tables)
        shape = np.ones(3, dtype=np.int64)
        shape[lead:] = gshape
        interp = np.zeros(3, dtype=np.int64)
        interp[lead:] = 1
        pts = grid.shape[1:]
        box3 = (1,) * (MAX_NDIM - len(pts)) + tuple(pts)
        coords = xp.ascontiguousarray(grid.reshape((ndim, *box3)))
        rows = np.full((4, 3), -1, dtype=np.int64)
        rows[1:3] = 0
        rows[3, lead:] = np.arange(ndim)
        out = xp.empty((coef.shape[0], *pts))
        status = dev.to_device(np.zeros(1, dtype=np.int64))
        for k in range(coef.shape[0]):
            res = dev.empty(box3, np.float64)
            self._launch_interp(
                coef[k].reshape(-1),
                tab,
                tlo,
                tlen,
                shape,
                interp,
                (K.MODE_CODES[mode], order, K.FORM_COORDS, 0, 0),
                stage.cval,
                np.zeros((3, 3)),
                np.zeros(3),
                np.zeros(1, dtype=np.int64),
                np.zeros((1, 3)),
                rows,
                coords,
                (0, 0, 0),
                res,
                status,
            )
            out[k] = res.reshape(pts)
        if int(dev.to_host(status)[0]):
            raise ValueError("a displacement field was sampled beyond scipy's integer range")
        return out

    def _launch_interp(
        self,
        buf,
        tab,
        tlo,
        tlen,
        shape,
        interp,
        ip,
        cval,
        lin,
        off,
        opk,
        opv,
        grid,
        coords,
        ostart,
        out,
        status,
    ):
        dev = self.device
        args = [
            buf,
            dev.to_device(tab),
            dev.to_device(np.asarray(tlo, dtype=np.int64)),
            dev.to_device(tlen),
            dev.to_device(shape),
            dev.to_device(interp),
            dev.to_device(np.asarray(ip, dtype=np.int64)),
            float(cval),
            dev.to_device(lin),
            dev.to_device(off),
            dev.to_device(opk),
            dev.to_device(opv),
            dev.to_device(grid),
            coords,
            dev.to_device(np.asarray(ostart, dtype=np.int64)),
            out,
            status,
        ]
        dev.launch(K.INTERPOLATE, out.size, *args)

    def _resample(self, job, plan, footprint, pieces, layouts):
        dev = self.device
        xp = dev.xp
        tables = _tap_tables(job, footprint, layouts)
        if tables is None:
            return None
        region = [t[3] for t in tables]
        window_shape = [hi - lo + 1 for lo, hi in region]
        box_shape = tuple(e - s for s, e in footprint.box)
        npts = int(np.prod(box_shape))
        out_dtype = np.dtype(np.float32 if np.dtype(job.dtype) == np.float32 else np.float64)
        need = int(np.prod(window_shape)) * 8 + npts * (out_dtype.itemsize + 8)
        need += sum(_host_bytes(dev, p) for p in pieces)
        if plan.form == K.FORM_COORDS:
            need += 3 * plan.n_in * npts * 8  # coordinates and their temporaries
        self._check_memory(need, f"output chunk {tuple(footprint.box)}")
        counts = [len(w.chunks) for w in footprint.axes]
        window = _assemble_region(dev, pieces, counts, layouts, region)
        if window.dtype not in (np.float32, np.float64):
            window = window.astype(np.float64)
        window = xp.ascontiguousarray(window)
        strides = _c_strides(window.shape)
        lead = MAX_NDIM - plan.n_in
        tabs = [np.zeros(1, dtype=np.int64)] * lead
        tlo = [0] * lead
        for h, (src, held, first, (lo, _)) in enumerate(tables):
            tabs.append(_table(src, held, lo, strides[h]))
            tlo.append(first)
        tab, tlen = _pack_tables(tabs)
        box3 = (1,) * (MAX_NDIM - len(box_shape)) + box_shape
        ostart = [0] * (MAX_NDIM - len(box_shape)) + [s for s, _ in footprint.box]
        coords = dev.to_device(np.zeros((1, 1, 1, 1)))
        if plan.form == K.FORM_COORDS:
            pts = gpu_stages.coordinates(dev, job.stages, footprint.box, self._sample_field)
            coords = xp.ascontiguousarray(pts.reshape((plan.n_in, *box3)))
        out = dev.empty(box3, out_dtype)
        status = dev.to_device(np.zeros(1, dtype=np.int64))
        opts = job.options
        self._launch_interp(
            window.reshape(-1),
            tab,
            tlo,
            tlen,
            plan.shape,
            plan.interp,
            (K.MODE_CODES[opts.mode], opts.order, plan.form, opts.pad, plan.nops),
            opts.cval,
            plan.lin,
            plan.off,
            plan.opk,
            plan.opv,
            plan.grid,
            coords,
            ostart,
            out,
            status,
        )
        if int(dev.to_host(status)[0]):
            return None
        out = out.reshape(box_shape)
        if out.dtype != np.dtype(job.dtype):
            out = _cast(xp, out, job.dtype)
        return out


def _c_strides(shape):
    strides = [1] * len(shape)
    for a in range(len(shape) - 2, -1, -1):
        strides[a] = strides[a + 1] * int(shape[a + 1])
    return strides


def _host_bytes(device, piece) -> int:
    """Bytes a piece adds on the device (a host array is copied there)."""
    return 0 if device.is_device_array(piece) and device.name != "host" else int(piece.nbytes)


def _assemble(device, pieces, counts):
    """:func:`.blocks.assemble` on the device."""
    if len(pieces) == 1:
        return pieces[0]
    grid = list(itertools.product(*(range(c) for c in counts)))
    sizes = []
    for axis in range(len(counts)):
        seen = {}
        for idx, piece in zip(grid, pieces, strict=True):
            seen.setdefault(idx[axis], piece.shape[axis])
        sizes.append([seen[i] for i in range(counts[axis])])
    offsets = [np.concatenate([[0], np.cumsum(s)]).astype(int) for s in sizes]
    out = device.empty(tuple(int(o[-1]) for o in offsets), pieces[0].dtype)
    for idx, piece in zip(grid, pieces, strict=True):
        sl = tuple(slice(offsets[a][i], offsets[a][i + 1]) for a, i in enumerate(idx))
        out[sl] = piece
    return out


def _assemble_region(device, pieces, counts, layouts, ranges):
    """:func:`.blocks.assemble_region` on the device, copying only the region's part of
    each piece (host pieces are sliced before they travel)."""
    return assemble_region(
        pieces, counts, layouts, ranges, to_array=device.to_device, empty=device.empty
    )

"""The ``"cpu"`` backend (the default): the reference backend with one compiled (numba)
kernel per chunk wherever it applies — every chunk of an affine or coordinate-array pass,
and of a chain of stages (affine, displacement field, expression ...: coordinates block
by block by compiled stages, :mod:`.kernels_chain`), orders 0-5, the 8 modes, 1-D to 3-D
(:mod:`.kernel_plan`, :mod:`.kernels_interp`, :mod:`.kernel_ndi`) — the compiled chunked
spline prefilter (:mod:`.kernels_prefilter`) for every order above 1, and scipy.ndimage per
chunk for every other pass (``describe`` says which, and why).

Where numba cannot be imported the backend is the reference backend, and says so once
(a :class:`RuntimeWarning`). In a process where no compiled kernel is loaded yet, small
passes run by the reference too, until they add up to more than loading numba costs
(:mod:`.cold_start`; dask config ``transfuse.cold_start_voxels``).
"""

from __future__ import annotations

from . import cold_start, kernel_ndi, kernel_plan, kernels_prefilter, numba_loader
from . import stages as stage_eval
from .base import ResampleJob
from .scipy_backend import ScipyExecutor, cast_like_scipy

__all__ = ["CPUExecutor", "NO_NUMBA_WARNING"]

#: What the backend says, once, where numba cannot be imported.
NO_NUMBA_WARNING = numba_loader.NO_NUMBA_WARNING


def warn_once_without_numba() -> None:
    """Warn, the first time only, where numba is not installed (without importing it: a
    numba that is installed but fails to import warns at the first kernel's check)."""
    if not numba_loader.installed():
        numba_loader.warn_once()


class CPUExecutor(ScipyExecutor):
    """scipy.ndimage per chunk, with the compiled kernel wherever it applies."""

    name = "cpu"

    def __init__(self):
        warn_once_without_numba()

    def for_pass(self, p):
        """The backend that runs the physical pass ``p``: the reference while the process
        starts cold and ``p`` is small (:mod:`.cold_start`), else this one."""
        return _ColdStart() if cold_start.claim(p) else self

    def prefilter_chunk(self, spec, pieces, layouts):
        """One chunk of spline coefficients with the compiled filter
        (:func:`.kernels_prefilter.prefilter_block`), scipy's where numba is missing."""
        if not kernels_prefilter.AVAILABLE:
            return super().prefilter_chunk(spec, pieces, layouts)
        return kernels_prefilter.prefilter_block(pieces, layouts, spec)

    def resample_chunk(self, job, footprint, pieces, layouts):
        """One output chunk (see :class:`~transfuse.executors.base.Executor`): the
        compiled kernel, else (a map it does not handle, a point it hands back) the
        reference path."""
        out = kernel_plan.resample(job, footprint, pieces, layouts)
        if out is None:
            return super().resample_chunk(job, footprint, pieces, layouts)
        if out.dtype != job.dtype:
            out = cast_like_scipy(out, job.dtype)
        return out

    def resample_chunk_into(self, job, footprint, pieces, layouts, view):
        """:meth:`resample_chunk` written into ``view`` (the chunk's box in the whole
        result, ``job.dtype``): the kernel writes into it, or into a buffer its thread
        reuses and copies, so no chunk allocates a fresh array."""
        out = kernel_plan.resample(job, footprint, pieces, layouts, into=view)
        if out is None:
            view[...] = super().resample_chunk(job, footprint, pieces, layouts)
        elif out is not view:
            view[...] = out if out.dtype == job.dtype else cast_like_scipy(out, job.dtype)

    def coordinates(self, stages, box):
        """Input coordinates of ``box`` through ``stages`` (as the reference backend; the
        displacement fields sampled by the compiled kernel)."""
        if not kernel_plan.AVAILABLE:
            return super().coordinates(stages, box)
        return stage_eval.coordinates(stages, box, kernel_ndi)

    def describe(self, p) -> str:
        """Which kernel runs the chunks of the physical pass ``p``, in words (for
        ``explain()``)."""
        if cold_start.runs_cold(p):
            return (
                "scipy.ndimage per chunk (a small pass while no compiled kernel is loaded: "
                "loading numba costs more; transfuse.cold_start_voxels)"
            )
        job = ResampleJob(
            p.stages, p.input.shape, p.options, p.output.dtype, p.batch_axes, p.plane_stages
        )
        return kernel_plan.describe(job)


class _ColdStart(ScipyExecutor):
    """The reference computing a pass for the ``"cpu"`` backend while it starts cold: only
    passes both compute bit for bit (:func:`.cold_start.same_bits`), so the pass keeps the
    ``"cpu"`` backend's dask key."""

    name = "cpu"

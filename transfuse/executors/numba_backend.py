"""The ``"numba"`` backend (opt-in): the reference backend with a compiled (numba) kernel
where it applies — one loop that computes each point's coordinates and interpolates it,
orders 0-5, the 8 modes, 1-D to 3-D, every chunk of an affine pass or a coordinate-array
pass (:mod:`.kernel_plan`, :mod:`.kernels_interp`) — and scipy.ndimage everywhere else.
Without numba it is the reference backend. Not the default yet: its specialisations take
10-20 s to compile in a fresh environment (then numba's disk cache loads them)."""

from __future__ import annotations

from . import kernel_plan
from .scipy_backend import ScipyExecutor, cast_like_scipy

__all__ = ["NumbaExecutor"]


class NumbaExecutor(ScipyExecutor):
    """scipy.ndimage per chunk, with the compiled kernel where it applies."""

    name = "numba"

    def resample_chunk(self, job, footprint, pieces, layouts):
        """One output chunk (see :class:`~transfuse.executors.base.Executor`)."""
        out = kernel_plan.resample(job, footprint, pieces, layouts)
        if out is None:
            return super().resample_chunk(job, footprint, pieces, layouts)
        if out.dtype != job.dtype:
            out = cast_like_scipy(out, job.dtype)
        return out

    def describe(self, p) -> str:
        """Which kernel runs the chunks of the physical pass ``p``, in words (for
        ``explain()``)."""
        from .base import ResampleJob

        job = ResampleJob(
            p.stages, p.input.shape, p.options, p.output.dtype, p.batch_axes, p.plane_stages
        )
        return kernel_plan.describe(job)

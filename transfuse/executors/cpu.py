"""The ``"cpu"`` backend: the reference backend with a compiled (numba) kernel where it
applies — one loop that computes each point's coordinates and interpolates it, orders
0-5, the 8 modes, 1-D to 3-D, every chunk of an affine pass or a coordinate-array pass
(:mod:`.compiled`) — and scipy.ndimage everywhere else. Without numba it is the
reference backend."""

from __future__ import annotations

from . import compiled
from .scipy_backend import ScipyExecutor, cast_like_scipy

__all__ = ["CPUExecutor"]


class CPUExecutor(ScipyExecutor):
    """scipy.ndimage per chunk, with the compiled kernel where it applies."""

    name = "cpu"

    def resample_chunk(self, job, footprint, pieces, layouts):
        """One output chunk (see :class:`~transfuse.executors.base.Executor`)."""
        out = compiled.resample(job, footprint, pieces, layouts)
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
        return compiled.describe(job)

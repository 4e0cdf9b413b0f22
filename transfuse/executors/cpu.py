"""The ``"cpu"`` backend: the reference backend with compiled (numba) kernels where they
apply — today order-1 interpolation of affine passes in 2-D and 3-D, bit-exact with scipy —
and scipy.ndimage everywhere else. Without numba it is the reference backend."""

from __future__ import annotations

import numpy as np

from ..planner.boundary import tap_source_index
from . import compiled
from .scipy_backend import ScipyExecutor, cast_like_scipy, gather_window

__all__ = ["CPUExecutor"]


def _affine_stage(job):
    stages = job.stages
    first = stages[0]
    if len(stages) == 1 and getattr(first, "form", None) == "matrix" and first.view is None:
        return first
    return None


class CPUExecutor(ScipyExecutor):
    """scipy.ndimage per chunk, with compiled order-1 kernels for affine passes."""

    name = "cpu"

    def describe(self, p) -> str:
        """What runs the chunks of the physical pass ``p``, in words."""
        affine = p.affine
        if (
            compiled.AVAILABLE
            and p.options.order == 1
            and affine is not None
            and affine.form == "matrix"
            and affine.view is None
            and p.input.ndim in (2, 3)
        ):
            return "compiled order-1 kernel (numba) where a chunk's taps allow, else scipy.ndimage"
        return "scipy.ndimage per chunk"

    def _linear(self, job, footprint, window, **constant):
        stage = _affine_stage(job)
        if stage is None or job.options.order != 1 or not compiled.AVAILABLE:
            return None
        if window.dtype.kind not in "iuf" or not window.dtype.isnative:
            return None  # the kernels are compiled for native numbers only
        out = compiled.affine_linear(
            window,
            stage.linear,
            stage.offset,
            footprint.box,
            [w.lo for w in footprint.axes],
            np.float64 if np.dtype(job.dtype).kind != "f" else job.dtype,
            **constant,
        )
        return None if out is None else cast_like_scipy(out, job.dtype)

    def fast_direct(self, job, footprint, window):
        """Every tap inside ``window``: the compiled kernel, when it applies."""
        return self._linear(job, footprint, window)

    def fast_constant(self, job, footprint, pieces, counts, layouts):
        """A ``constant``-mode chunk reaching outside the input: such points get cval;
        inside, taps past the edge read the mirrored samples."""
        opts = job.options
        if opts.mode != "constant" or opts.order != 1 or _affine_stage(job) is None:
            return None
        if not compiled.AVAILABLE:
            return None
        sources = [
            tap_source_index(np.arange(w.lo, w.hi + 1), n, "constant")
            for n, w in zip(job.input_shape, footprint.axes, strict=True)
        ]
        window = gather_window(sources, pieces, counts, layouts)
        return self._linear(job, footprint, window, outside=job.input_shape, cval=opts.cval)

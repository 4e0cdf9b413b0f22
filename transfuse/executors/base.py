"""The executor protocol: the per-chunk work a backend supplies to the graph builder.

The graph builder (:mod:`transfuse.executors.graph`) owns everything about dask: layers,
tasks, keys, footprints. Each task calls one method of an executor:

* ``prefilter_chunk(spec, pieces, layouts)`` — one chunk of spline coefficients from the
  input chunks its filter window reads;
* ``resample_chunk(job, footprint, pieces, layouts)`` — one output chunk: evaluate the
  pass's stages over the chunk's box and interpolate from the coefficient chunks.

A backend is one module defining a class with ``name``, those two methods and ``meta``
(an empty array of the backend's array type); register it in
:data:`transfuse.executors.REGISTRY`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from ..planner.footprint import ChunkFootprint
from ..planner.options import ResampleOptions
from .blocks import AxisLayout
from .spline import PrefilterSpec

__all__ = ["Executor", "PrefilterSpec", "ResampleJob"]


@dataclasses.dataclass(frozen=True, eq=False)
class ResampleJob:
    """What one output chunk's task knows of its pass.

    ``stages`` carry their data: a :class:`~transfuse.planner.physical.FieldStage` its
    coefficient array, a :class:`~transfuse.planner.physical.CoordinateArrayStage` the
    coordinates of this chunk only.
    """

    stages: tuple
    input_shape: tuple[int, ...]
    options: ResampleOptions
    dtype: np.dtype
    batch_axes: tuple[int, ...] = ()
    plane_stages: tuple = ()

    def plane(self) -> ResampleJob:
        """The job of one slice of a pass working slice by slice."""
        planes = [a for a in range(len(self.input_shape)) if a not in self.batch_axes]
        return ResampleJob(
            self.plane_stages, tuple(self.input_shape[a] for a in planes), self.options, self.dtype
        )


class Executor(Protocol):
    """Per-chunk work of a backend (see the module docstring)."""

    name: str

    def meta(self, dtype, ndim: int):
        """An empty array of the backend's array type (dask's ``meta``)."""

    def prefilter_chunk(self, spec: PrefilterSpec, pieces: list, layouts: list[AxisLayout]):
        """Spline coefficients (float64) of the domain range ``spec.span``; ``pieces`` are the
        input chunks read, row-major over a grid of chunks, ``layouts`` where each axis's
        indices sit in them."""

    def resample_chunk(
        self, job: ResampleJob, footprint: ChunkFootprint, pieces: list, layouts: list
    ):
        """One output chunk of ``footprint.box``, in ``job.dtype``."""

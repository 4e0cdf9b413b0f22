"""Image expressions: what the lazy API records, before planning."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..transforms import Transform
from .options import ResampleOptions
from .physical import GridView

__all__ = ["Source", "Step"]


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
    """The input image: its geometry and the name of the dask collection holding it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[tuple[int, ...], ...]
    name: str

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One resampling the user asked for: pull ``child`` through ``transform`` onto a grid
    of ``output_shape``.

    ``operation`` names the scipy.ndimage function the step means (``"affine_transform"``,
    ``"rotate"``, ``"zoom"``, ``"shift"``, ``"map_coordinates"``; ``"transform"`` for
    :meth:`~transfuse.LazyImage.transform`, which means ``affine_transform`` with the
    transform's homogeneous matrix). Lowering reads it to reproduce that function's
    arithmetic when the step is resampled on its own (the separable arithmetic of
    ``zoom``/``shift``, and ``rotate`` working plane by plane); it never decides fusion.
    """

    child: Source | Step
    transform: Transform
    output_shape: tuple[int, ...]
    options: ResampleOptions
    output_chunks: tuple | None = None
    dtype: np.dtype | None = None
    label: str = ""
    operation: str = "transform"
    view: GridView | None = None  # a selection of the step's grid (lazy indexing)
    #: axes the step never resamples (channels, time): filtered and interpolated slice by
    #: slice when the fused map is the identity on them (as ``rotate`` works plane by plane)
    batch_axes: tuple[int, ...] = ()

    @property
    def ndim(self) -> int:
        return len(self.output_shape)

    @property
    def source(self) -> Source:
        node = self.child
        while isinstance(node, Step):
            node = node.child
        return node

    @property
    def shape(self) -> tuple[int, ...]:
        return self.output_shape

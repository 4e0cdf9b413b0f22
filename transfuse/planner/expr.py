"""Image expressions: what the lazy API records, before planning."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..transforms import Transform
from .options import ResampleOptions

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

    ``zoom_shift`` keeps scipy's separable arithmetic ``(o + shift) * zoom`` for steps that
    scipy computes that way (``zoom``, ``shift``, a 1-D ``affine_transform`` matrix); it is
    used when the step is resampled on its own.

    ``batch_axes`` are axes along which the step works slice by slice (the map is the
    identity there and no spline runs along them), as scipy.ndimage.rotate does with the
    axes outside its plane.
    """

    child: Source | Step
    transform: Transform
    output_shape: tuple[int, ...]
    options: ResampleOptions
    output_chunks: tuple | None = None
    dtype: np.dtype | None = None
    label: str = ""
    zoom_shift: tuple | None = None
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

"""Output grids of the lazy API: what each image operation does to an image's
:class:`~transfuse.Grid`, and helpers that choose the grid to resample onto.

The rules (``docs/physical-space.md``):

* a **view** (``img[...]``) and a **zoom** sample the input grid at ``start + step * i``:
  the result keeps the input's physical placement (origin moves to the first sample,
  spacing scales with the step);
* every **other index-space operation** (``transform``, ``affine_transform``, ``rotate``,
  ``shift``, ``flip``) moves the content inside the index space: the result keeps the
  input grid's index->physical map, with the new shape;
* :meth:`~transfuse.LazyImage.resample` puts the result on the grid it is given (``onto``).
"""

from __future__ import annotations

import numpy as np

from .transforms import Grid

__all__ = ["as_grid", "view_grid", "zoom_grid"]


def as_grid(value, name: str = "onto") -> Grid:
    """``value`` as a :class:`Grid`: a grid itself, or anything with a ``grid`` (a lazy
    image). Anything else is a TypeError naming ``name``."""
    if isinstance(value, Grid):
        return value
    grid = getattr(value, "grid", None)
    if isinstance(grid, Grid):
        return grid
    raise TypeError(f"{name}={value!r} must be a transfuse.Grid or a lazy image (its grid)")


def view_grid(grid: Grid, view) -> Grid:
    """The grid of a lazy view (a :class:`~transfuse.planner.physical.GridView`) of an
    image on ``grid``."""
    starts, steps, shape, dropped = [], [], [], []
    for a, (j, start, step) in enumerate(view.axes):
        starts.append(start)
        if j is None:
            steps.append(1)
            shape.append(1)
            dropped.append(a)
        else:
            steps.append(step)
            shape.append(view.shape[j])
    sub = grid.subgrid(starts, steps, shape)
    return sub.drop_axes(dropped) if dropped else sub


def zoom_grid(grid: Grid, start, ratio, shape) -> Grid:
    """The grid of a zoom whose pull map is ``start + ratio * i``. A ratio of 0 (a single
    sample stretched over an axis) keeps the sample's physical size: spacing scales by the
    shape ratio instead."""
    ratio = np.asarray(ratio, dtype=np.float64)
    shape_ratio = np.asarray(grid.shape, float) / np.maximum(np.asarray(shape, float), 1)
    ratio = np.where(ratio > 0, ratio, shape_ratio)
    return grid.subgrid(start, ratio, shape)

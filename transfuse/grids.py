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


#: Axis names that are batch (non-spatial) axes, as in spatial-image: channels and time.
BATCH_AXIS_NAMES = ("c", "t")


def batch_axes(grid: Grid) -> tuple[int, ...]:
    """The axes of ``grid`` named ``c`` or ``t``: never resampled by a physical transform."""
    return tuple(a for a, name in enumerate(grid.axes) if name in BATCH_AXIS_NAMES)


def with_batch_axes(target: Grid, source: Grid, batch) -> Grid:
    """``target`` with the batch axes of ``source`` inserted when it has only the spatial
    axes; ``target`` itself when it has every axis."""
    if target.ndim == source.ndim:
        return target
    if not batch or target.ndim != source.ndim - len(batch):
        raise ValueError(
            f"onto has {target.ndim} axes (shape {target.shape}), the image has "
            f"{source.ndim} ({', '.join(source.axes)}): give a grid of every axis"
            + (f" or of the {source.ndim - len(batch)} spatial ones" if batch else "")
        )
    spatial = [a for a in range(source.ndim) if a not in batch]
    n = source.ndim
    direction = np.eye(n)
    direction[np.ix_(spatial, spatial)] = target.direction
    shape, spacing, origin = list(source.shape), list(source.spacing), list(source.origin)
    axes, units = list(source.axes), list(source.units)
    for k, a in enumerate(spatial):
        shape[a], spacing[a], origin[a] = target.shape[k], target.spacing[k], target.origin[k]
        units[a] = target.units[k]
    return Grid(tuple(shape), tuple(spacing), tuple(origin), direction, tuple(axes), tuple(units))


def embed_spatial(transform, ndim: int, batch):
    """A transform of the spatial axes as one of all ``ndim`` axes (the identity on the
    batch axes). Only affine transforms embed; others must already have ``ndim`` axes."""
    own = transform.ndim
    spatial = [a for a in range(ndim) if a not in batch]
    if not batch or own == ndim or (own is None and not transform.is_affine):
        return transform
    k = len(spatial)
    if own is not None and own != k:
        return transform  # resolve_ndim names the mismatch
    if not transform.is_affine or transform.free_symbols:
        raise ValueError(
            f"transform {type(transform).__name__} acts on {k} spatial axes of an image with "
            f"batch axes {list(batch)}: only numeric affine transforms are embedded; "
            "resample each channel/time point (img[i]) or give a transform of all axes"
        )
    from .transforms import Affine

    m = np.eye(ndim + 1)
    small = np.asarray(transform.matrix(k), dtype=np.float64)
    rows = [*spatial, ndim]
    m[np.ix_(rows, rows)] = small
    return Affine(m)

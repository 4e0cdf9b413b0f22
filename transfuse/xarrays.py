"""xarray DataArrays in and out of the lazy API.

``lazy(data_array)`` takes the grid from the array's coordinates: each dimension with a
regular 1-D numeric coordinate gets ``spacing`` = its step and ``origin`` = its first value
(a decreasing coordinate flips the axis' direction); a dimension without a coordinate is an
index axis (spacing 1, origin 0). Units come from each coordinate's ``attrs["units"]``
(spatial-image's convention). Dimensions named ``c`` (channels) and ``t`` (time) are
**batch axes**: they are never resampled, physical transforms act on the other
(spatial) axes, and their coordinates, whatever they hold, come back unchanged.

Results of an image built from a DataArray come back as DataArrays with the output grid's
coordinates and the input's ``attrs`` and ``name`` (:meth:`~transfuse.LazyImage.compute`,
:meth:`~transfuse.LazyImage.to_xarray`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .grids import BATCH_AXIS_NAMES as BATCH_DIMS
from .transforms import Grid

__all__ = ["XarrayMeta", "from_dataarray", "select_batch", "to_dataarray"]

#: A coordinate is regular when every step is within this fraction of the mean step.
REGULAR_RTOL = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)
class XarrayMeta:
    """What a DataArray input tells the output: names, attributes, coordinate attributes
    and the coordinates of batch axes (kept as they were)."""

    dims: tuple
    name: object
    attrs: dict
    coord_attrs: dict  # dim -> attrs of its coordinate
    batch: dict  # dim -> coordinate values (or None) of a batch axis
    input_grid: Grid

    @property
    def batch_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.dims) if d in self.batch)


def _axis(values, dim):
    """(spacing, origin, flip) of a regular numeric 1-D coordinate."""
    v = np.asarray(values)
    if v.dtype.kind not in "iuf":
        raise ValueError(
            f"coordinate of dimension {dim!r} has dtype {v.dtype}: a spatial axis needs "
            "numbers (name a non-spatial axis 'c' or 't', or drop its coordinate)"
        )
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"coordinate of dimension {dim!r} is not finite")
    if v.size < 2:
        return 1.0, float(v[0]) if v.size else 0.0, False
    steps = np.diff(v)
    step = (v[-1] - v[0]) / (v.size - 1)
    if step == 0 or np.any(np.abs(steps - step) > REGULAR_RTOL * abs(step)):
        raise ValueError(
            f"coordinate of dimension {dim!r} is irregular (steps from {steps.min():g} "
            f"to {steps.max():g}): transfuse grids need evenly spaced coordinates"
        )
    return abs(float(step)), float(v[0]), bool(step < 0)


def from_dataarray(data):
    """``(array, grid, meta)`` of a DataArray: its data (numpy or dask, not copied), the
    grid of its coordinates and the :class:`XarrayMeta` results are built from.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"),
    ...                  coords={"y": [10.0, 12.0, 14.0], "x": np.arange(4) * 0.5})
    >>> _, grid, _ = from_dataarray(a)
    >>> grid.spacing, grid.origin, grid.axes
    ((2.0, 0.5), (10.0, 0.0), ('y', 'x'))
    """
    dims = tuple(str(d) for d in data.dims)
    spacing, origin, flips, units, coord_attrs, batch = [], [], [], [], {}, {}
    for dim, original in zip(dims, data.dims, strict=True):
        coord = data.coords.get(original)
        if coord is not None and coord.dims != (original,):
            raise ValueError(
                f"coordinate of dimension {dim!r} has dims {coord.dims}: only 1-D "
                "coordinates along their own dimension make a grid"
            )
        attrs = dict(coord.attrs) if coord is not None else {}
        coord_attrs[dim] = attrs
        if dim in BATCH_DIMS:
            batch[dim] = None if coord is None else np.asarray(coord.values)
            s, o, f = 1.0, 0.0, False
        elif coord is None:
            s, o, f = 1.0, 0.0, False
        else:
            s, o, f = _axis(coord.values, dim)
        spacing.append(s)
        origin.append(o)
        flips.append(f)
        unit = attrs.get("units")
        units.append(unit if isinstance(unit, str) else None)
    grid = Grid(
        tuple(data.shape),
        spacing=tuple(spacing),
        origin=tuple(origin),
        direction=np.diag([-1.0 if f else 1.0 for f in flips]),
        axes=dims,
        units=tuple(units),
    )
    meta = XarrayMeta(dims, data.name, dict(data.attrs), coord_attrs, batch, grid)
    return data.data, grid, meta


def select_batch(meta: XarrayMeta, axes, index) -> XarrayMeta:
    """``meta`` after the view ``index`` (integers and slices, one per axis named in
    ``axes``): the batch coordinates of the selected entries."""
    batch = dict(meta.batch)
    for name, item in zip(axes, index, strict=True):
        if name in batch and batch[name] is not None and isinstance(item, slice):
            batch[name] = batch[name][item]
    return dataclasses.replace(meta, batch=batch)


def _dims(grid: Grid, meta: XarrayMeta | None) -> tuple:
    """The output's dimension names: the input's when the rank is kept (a grid given to
    ``onto`` may use other axis names), else the grid's (a view dropped axes)."""
    if meta is not None and len(meta.dims) == grid.ndim:
        return meta.dims
    return grid.axes


def _coordinates(grid: Grid, dims, meta: XarrayMeta | None):
    """dim -> coordinate values of ``grid`` (axis-aligned grids only)."""
    d = np.asarray(grid.direction)
    if not np.array_equal(np.abs(d), np.eye(grid.ndim)):
        raise ValueError(
            f"the grid has direction {d.tolist()}: a DataArray's coordinates cannot "
            "describe a rotated grid; use .to_dask() and .grid instead"
        )
    out = {}
    for a, dim in enumerate(dims):
        if meta is not None and dim in meta.batch:
            values = meta.batch[dim]
            if values is not None and len(values) == grid.shape[a]:
                out[dim] = values
            continue
        out[dim] = grid.origin[a] + d[a, a] * grid.spacing[a] * np.arange(grid.shape[a])
    return out


def to_dataarray(values, grid: Grid, meta: XarrayMeta | None):
    """A DataArray of ``values`` (numpy or dask) on ``grid``, with ``meta``'s attributes."""
    import xarray as xr

    dims = _dims(grid, meta)
    coords = {}
    for dim, v in _coordinates(grid, dims, meta).items():
        attrs = {} if meta is None else dict(meta.coord_attrs.get(dim, {}))
        unit = grid.units[dims.index(dim)]
        if unit is not None:
            attrs.setdefault("units", unit)
        coords[dim] = xr.Variable((dim,), v, attrs=attrs)
    name = None if meta is None else meta.name
    attrs = {} if meta is None else dict(meta.attrs)
    return xr.DataArray(values, dims=dims, coords=coords, name=name, attrs=attrs)

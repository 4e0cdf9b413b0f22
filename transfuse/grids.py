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

import itertools

import numpy as np

from .transforms import Affine, Grid, Identity, Transform

__all__ = ["as_grid", "bounding_grid", "grid_like", "resample_pull", "view_grid", "zoom_grid"]


def as_grid(value, name: str = "onto") -> Grid:
    """``value`` as a :class:`Grid`: a grid itself, anything with a ``grid`` (a lazy
    image) or an xarray DataArray (the grid of its coordinates). Anything else is a
    TypeError naming ``name``."""
    if isinstance(value, Grid):
        return value
    grid = getattr(value, "grid", None)
    if isinstance(grid, Grid):
        return grid
    if type(value).__name__ == "DataArray" and type(value).__module__.startswith("xarray"):
        from .xarrays import from_dataarray

        return from_dataarray(value)[1]
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
    m = np.eye(ndim + 1)
    small = np.asarray(transform.matrix(k), dtype=np.float64)
    rows = [*spatial, ndim]
    m[np.ix_(rows, rows)] = small
    return Affine(m)


#: Entries of a fused physical->index matrix this close to an integer (relative to the
#: row's largest entry) are rounding of an exact value (``to_index @ to_physical`` of one
#: grid); they are snapped so that boundary voxels of ``mode="constant"`` stay inside.
SNAP_RTOL = 1e-12


def _physical_pull(source: Grid, transform: Transform, target: Grid) -> Transform:
    """The index-space pull map ``source.to_index() @ transform @ target.to_physical()``:
    one snapped matrix when ``transform`` is affine with numbers, else the composition."""
    chain = source.to_index() @ transform @ target.to_physical()
    if not transform.is_affine or transform.free_symbols:
        return chain
    m = chain.matrix(source.ndim)
    scale = np.maximum(1.0, np.abs(m).max(axis=1, keepdims=True))
    near = np.abs(m - np.round(m)) <= SNAP_RTOL * scale
    return Affine(np.where(near, np.round(m), m))


def _check_units(source: Grid, target: Grid) -> None:
    """Physical coordinates in different units cannot be mixed silently."""
    for a, (u, v) in enumerate(zip(source.units, target.units, strict=True)):
        if u is not None and v is not None and u != v:
            raise ValueError(
                f"onto has units {target.units}, the image {source.units} (axis {a}: "
                f"{v!r} vs {u!r}): convert one grid first"
            )


def resample_pull(grid: Grid, transform, onto, space: str):
    """What :meth:`~transfuse.LazyImage.resample` resamples with: the index-space pull
    map, the output grid and the batch axes, for an image on ``grid``."""
    if space not in ("physical", "index"):
        raise ValueError(f"space={space!r} must be 'physical' or 'index'")
    batch = batch_axes(grid)
    target = grid if onto is None else as_grid(onto, "onto")
    target = with_batch_axes(target, grid, batch)
    if transform is None:
        transform = Identity(grid.ndim)
    if not isinstance(transform, Transform):
        raise TypeError(f"transform={transform!r} is not a transfuse Transform (or None)")
    transform = embed_spatial(transform, grid.ndim, batch)
    transform.resolve_ndim(grid.ndim)
    if space == "index":
        return transform, target, batch
    _check_units(grid, target)
    return _physical_pull(grid, transform, target), target, batch


def spatial_grid(grid: Grid) -> Grid:
    """``grid`` without its batch axes (``c``, ``t``), which are index axes."""
    batch = batch_axes(grid)
    if not batch:
        return grid
    keep = [a for a in range(grid.ndim) if a not in batch]

    def pick(values):
        return tuple(values[a] for a in keep)

    d = np.asarray(grid.direction)[np.ix_(keep, keep)]
    return Grid(
        pick(grid.shape),
        pick(grid.spacing),
        pick(grid.origin),
        d,
        pick(grid.axes),
        pick(grid.units),
    )


def grid_like(reference, spacing=None) -> Grid:
    """The grid of a reference image (or grid), optionally at another ``spacing`` over the
    same extent (the origin is kept; each axis holds as many samples as fit in the
    reference's extent, at least one).

    Examples
    --------
    >>> import transfuse
    >>> ref = transfuse.Grid((11, 21), spacing=(1.0, 0.5), origin=(5.0, 0.0))
    >>> g = transfuse.grid_like(ref, spacing=0.25)
    >>> g.shape, g.spacing, g.origin
    ((41, 41), (0.25, 0.25), (5.0, 0.0))
    """
    grid = as_grid(reference, "reference")
    if spacing is None:
        return grid
    new = np.asarray(Grid(grid.shape, spacing=spacing).spacing)
    length = (np.asarray(grid.shape) - 1).clip(0) * np.asarray(grid.spacing)
    shape = np.floor(length / new + 1e-9).astype(int) + 1
    return grid.replace(shape=tuple(int(n) for n in shape), spacing=tuple(new.tolist()))


def _frame(grid: Grid, spacing, direction):
    n = grid.ndim
    spacing = grid.spacing if spacing is None else spacing
    direction = grid.direction if direction is None else direction
    # validated by Grid: positive spacing, invertible direction
    probe = Grid((1,) * n, spacing=spacing, direction=direction, axes=grid.axes)
    return np.asarray(probe.spacing), np.asarray(probe.direction)


def _grid_of_points(points, grid: Grid, spacing, direction) -> Grid:
    """The smallest grid of the frame (spacing, direction) whose voxel centres' box holds
    ``points`` (physical, ``(k, n)``): the origin at the lowest corner."""
    q = np.linalg.solve(direction, np.asarray(points, dtype=np.float64).T).T
    lo, hi = q.min(axis=0), q.max(axis=0)
    shape = np.ceil((hi - lo) / spacing - 1e-9).astype(np.int64) + 1
    return Grid(
        tuple(int(v) for v in np.maximum(shape, 1)),
        spacing=tuple(spacing.tolist()),
        origin=tuple((direction @ lo).tolist()),
        direction=direction,
        axes=grid.axes,
        units=grid.units,
    )


def bounding_grid(reference, transform, spacing=None, direction=None, max_steps=64) -> Grid:
    """The grid that holds the whole ``reference`` after ``transform``: every output point
    the pull map ``transform`` (output physical -> input physical, as in
    :meth:`~transfuse.LazyImage.resample`) sends into the input's extent.

    The input's extent is the box of its voxel centres (outside it ``mode="constant"``
    gives ``cval``). For an affine ``transform`` the grid is exact: the input's corners
    pushed through the inverse, the smallest grid of the frame holding them (origin at the
    lowest corner, the last voxel at or just past the highest). For a non-linear one it is
    sound: starting from the affine part's grid, each side grows while the planner's sound
    bounds (:mod:`transfuse.planner.bounds`) say a tile just outside it may reach the
    input, then shrinks while a slab inside it cannot; it holds every output point of the
    connected region around that start (a second, separate region the map might send into
    the input is not searched for).

    Parameters
    ----------
    reference : Grid or LazyImage
        The input (a lazy image: its grid).
    transform : Transform
        The physical pull map (spatial axes only for images with ``c``/``t`` axes).
    spacing : float or sequence, optional
        Of the result (default: the reference's).
    direction : array_like, optional
        Of the result (default: the reference's; ``numpy.eye(n)`` for an axis-aligned
        result).
    max_steps : int
        Growth steps allowed before giving up (ValueError) on a non-linear map.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> g = transfuse.Grid((11, 21))
    >>> T = transfuse.Rotate(90.0, axes=(0, 1))
    >>> transfuse.bounding_grid(g, T).shape
    (21, 11)
    """
    grid = spatial_grid(as_grid(reference, "reference"))
    if not isinstance(transform, Transform):
        raise TypeError(f"transform={transform!r} is not a transfuse Transform")
    n = transform.resolve_ndim(transform.ndim if transform.ndim is not None else grid.ndim)
    if n != grid.ndim:
        raise ValueError(f"transform has ndim={n}, the reference grid {grid.ndim} spatial axes")
    spacing, direction = _frame(grid, spacing, direction)
    if transform.free_symbols:
        raise ValueError(
            f"transform has unbound free symbols {sorted(map(str, transform.free_symbols))}"
        )
    affine = [p for p in transform.parts if p.is_affine]
    if len(affine) == len(transform.parts):
        m = np.asarray(transform.matrix(n), dtype=np.float64)
        if not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) < 1e-300:
            raise ValueError(f"transform={transform!r} is singular: it has no inverse")
        pushed = _apply(np.linalg.inv(m), grid.corners())
        return _grid_of_points(pushed, grid, spacing, direction)
    start = _affine_part_grid(transform, affine, grid, spacing, direction)
    return _grow(transform, grid, start, max_steps)


def _apply(m, points):
    n = m.shape[0] - 1
    return points @ m[:n, :n].T + m[:n, n]


def _affine_part_grid(transform, affine, grid, spacing, direction):
    n = grid.ndim
    m = np.eye(n + 1)
    for p in affine:
        m = m @ np.asarray(p.matrix(n), dtype=np.float64)
    try:
        pushed = _apply(np.linalg.inv(m), grid.corners())
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"the affine part of transform={transform!r} is singular") from exc
    return _grid_of_points(pushed, grid, spacing, direction)


#: Tiles per axis of a layer bounded while growing a non-linear bounding grid (at most),
#: and their smallest side.
TILES_PER_AXIS = 8
MIN_TILE = 8


def _reaching(transform, source: Grid, candidate: Grid, boxes) -> np.ndarray:
    """For boxes of ``candidate``'s index space (``(k, n, 2)``, may lie outside it),
    whether the planner's sound bounds let any point of the box map into ``source``'s
    extent."""
    from .executors.spline import field_coefficients
    from .planner.lower import compile_map

    chain = source.to_index() @ transform @ candidate.to_physical()
    compiled = compile_map(chain, source.ndim, spline_filter=field_coefficients)
    r = compiled.ranges(np.asarray(boxes, dtype=np.int64))
    hi = np.asarray(source.shape, dtype=np.float64) - 1
    return np.all((r[..., 1] >= 0) & (r[..., 0] <= hi), axis=1)


def _tiles(shape, axis, lo, hi):
    """Boxes tiling the slab ``[lo, hi)`` of ``axis`` (the other axes widened by one on
    each side), at most :data:`TILES_PER_AXIS` per axis."""
    ranges = []
    for a, size in enumerate(shape):
        if a == axis:
            ranges.append([(lo, hi)])
        else:
            tile = max(MIN_TILE, -(-(size + 2) // TILES_PER_AXIS))
            edges = list(range(-1, size + 1, tile)) + [size + 1]
            # neighbouring tiles share their edge voxels: the slab is covered without gaps
            ranges.append([(s, min(e + 1, size + 1)) for s, e in itertools.pairwise(edges)])
    return np.array(list(itertools.product(*ranges)), dtype=np.int64)


def _reach_groups(transform, source: Grid, candidate: Grid, groups) -> np.ndarray:
    """:func:`_reaching` for groups of boxes (one bounds evaluation): whether any box of
    each group may reach the input."""
    counts = [len(g) for g in groups]
    reach = _reaching(transform, source, candidate, np.concatenate(groups))
    return np.array([r.any() for r in np.split(reach, np.cumsum(counts)[:-1])])


def _first_layer(transform, source, c, axis, from_low: bool):
    """The first layer along ``axis`` (from the low or the high side) whose bounds may
    reach the input, or None: slabs of several layers first, then the layers of the
    slabs that may reach (a slab's bound is looser than its layers')."""
    size = c.shape[axis]
    k = max(1, -(-size // 16))
    starts = list(range(0, size, k))
    if not from_low:
        starts = starts[::-1]
    slabs = _reach_groups(
        transform, source, c, [_tiles(c.shape, axis, s, min(s + k, size)) for s in starts]
    )
    for start, hit in zip(starts, slabs, strict=True):
        if not hit:
            continue
        layers = list(range(start, min(start + k, size)))
        if not from_low:
            layers = layers[::-1]
        hits = _reach_groups(
            transform, source, c, [_tiles(c.shape, axis, q, q + 1) for q in layers]
        )
        if hits.any():
            return layers[int(np.argmax(hits))]
    return None


def _grow(transform, source: Grid, grid: Grid, max_steps: int) -> Grid:
    n = grid.ndim
    lo = np.zeros(n, dtype=np.int64)  # sides, in voxels of the starting grid's index space
    hi = np.asarray(grid.shape, dtype=np.int64)

    def candidate():
        return grid.subgrid(lo, 1, tuple((hi - lo).tolist()))

    for _ in range(max_steps):
        c = candidate()
        grew = False
        for a in range(n):
            size = int(hi[a] - lo[a])
            step = max(1, size // 4)
            below, above = _reach_groups(
                transform,
                source,
                c,
                [_tiles(c.shape, a, -1, 0), _tiles(c.shape, a, size, size + 1)],
            )
            lo[a] -= step if below else 0
            hi[a] += step if above else 0
            grew = grew or bool(below or above)
        if not grew:
            break
    else:
        raise ValueError(
            f"bounding_grid: the bounds of transform={transform!r} still reach the input "
            f"after {max_steps} growth steps; give the output grid explicitly"
        )
    # trim the layers no point of which can reach the input (bounded on the grown grid:
    # a layer that cannot reach over a wider section cannot over a narrower one)
    c = candidate()
    first = [_first_layer(transform, source, c, a, True) for a in range(n)]
    if any(f is None for f in first):
        raise ValueError(
            f"bounding_grid: transform={transform!r} sends no output point near its "
            "affine part's image into the input; give the output grid explicitly"
        )
    last = [_first_layer(transform, source, c, a, False) for a in range(n)]
    lo, hi = lo + np.asarray(first), lo + np.asarray(last) + 1
    return candidate()

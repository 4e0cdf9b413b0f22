"""Sampling grids: where each voxel of an image lies in physical space.

A :class:`Grid` ties array indices to physical coordinates::

    physical = origin + direction @ (spacing * index)

Every vector is in **numpy axis order** (``z, y, x`` for a 3-D volume), and so are the
physical coordinates: transfuse never reorders axes. Files that use ITK's ``(x, y, z)`` order
are reversed where they are read or written (:meth:`Grid.from_itk`, :meth:`Grid.to_itk`).

The index↔physical maps are ordinary :class:`~transfuse.Affine` transforms, so a chain
written in physical space fuses with everything else and still resamples once.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from .affine import Affine

__all__ = ["Grid"]


def _tuple_of_floats(value, ndim, name, default):
    if value is None:
        return (float(default),) * ndim
    if np.ndim(value) == 0:
        value = (value,) * ndim
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} must hold {ndim} numbers") from exc
    if arr.shape != (ndim,):
        raise ValueError(f"{name}={value!r} must hold {ndim} numbers (one per axis)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={value!r} must be finite")
    return tuple(float(v) for v in arr)


def _shape(value) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError as exc:
        raise ValueError(f"shape={value!r} must be a sequence of non-negative integers") from exc
    out = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or s != int(s) or s < 0:
            raise ValueError(f"shape={value!r} must be a sequence of non-negative integers")
        out.append(int(s))
    if not out:
        raise ValueError("shape=() has no axes; a grid needs at least one")
    return tuple(out)


def _default_axes(ndim: int) -> tuple[str, ...]:
    if ndim <= 3:
        return ("z", "y", "x")[3 - ndim :]
    return tuple(f"dim_{i}" for i in range(ndim))


@dataclasses.dataclass(frozen=True)
class Grid:
    """A regular sampling grid in physical space (immutable, validated).

    Parameters
    ----------
    shape : tuple of int
        Voxels per axis.
    spacing : float or sequence of float, optional
        Voxel size per axis (positive). Default 1.
    origin : sequence of float, optional
        Physical position of voxel ``(0, ..., 0)``'s centre. Default 0.
    direction : array_like, optional
        ``(n, n)``; column ``j`` is the physical direction of array axis ``j``. Must be finite
        and invertible (ITK and NIfTI grids are orthonormal; NGFF allows any affine).
        Default: identity.
    axes : sequence of str, optional
        Axis names, e.g. ``("z", "y", "x")`` (the default for up to 3 axes).
    units : str or sequence of str, optional
        Physical unit per axis (e.g. ``"micrometer"``); ``None`` when unknown.

    Examples
    --------
    >>> from transfuse import Grid
    >>> g = Grid((10, 20), spacing=(0.5, 0.25), origin=(100.0, 0.0))
    >>> g.to_physical()([[2, 4]])
    array([[101.,   1.]])
    >>> g.to_index()([[101.0, 1.0]])
    array([[2., 4.]])
    >>> g.extent
    ((100.0, 104.5), (0.0, 4.75))
    """

    shape: tuple
    spacing: tuple = None
    origin: tuple = None
    direction: tuple = None
    axes: tuple = None
    units: tuple = None

    def __post_init__(self):
        shape = _shape(self.shape)
        n = len(shape)
        spacing = _tuple_of_floats(self.spacing, n, "spacing", 1.0)
        if any(s <= 0 for s in spacing):
            raise ValueError(f"spacing={spacing} must be positive")
        origin = _tuple_of_floats(self.origin, n, "origin", 0.0)
        if self.direction is None:
            d = np.eye(n)
        else:
            try:
                d = np.asarray(self.direction, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"direction={self.direction!r} must be {n}x{n} numbers") from exc
            if d.shape == (n * n,):
                d = d.reshape(n, n)
            if d.shape != (n, n):
                raise ValueError(
                    f"direction must be {n}x{n} (or hold {n * n} numbers), "
                    f"got shape {np.shape(self.direction)}"
                )
            if not np.all(np.isfinite(d)):
                raise ValueError(f"direction={d.tolist()} must be finite")
            if abs(np.linalg.det(d)) < 1e-12 * max(1.0, float(np.abs(d).max()) ** n):
                raise ValueError(f"direction={d.tolist()} must be invertible")
        direction = tuple(tuple(float(v) for v in row) for row in d)
        axes = _default_axes(n) if self.axes is None else tuple(self.axes)
        if len(axes) != n or not all(isinstance(a, str) and a for a in axes):
            raise ValueError(f"axes={self.axes!r} must be {n} non-empty names")
        if len(set(axes)) != n:
            raise ValueError(f"axes={self.axes!r} repeats a name")
        units = self.units
        if units is None or isinstance(units, str):
            units = (units,) * n
        units = tuple(units)
        if len(units) != n or not all(u is None or isinstance(u, str) for u in units):
            raise ValueError(f"units={self.units!r} must be {n} strings (or None)")
        for name, value in [
            ("shape", shape),
            ("spacing", spacing),
            ("origin", origin),
            ("direction", direction),
            ("axes", axes),
            ("units", units),
        ]:
            object.__setattr__(self, name, value)

    # -- basic properties -----------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def replace(self, **changes) -> Grid:
        """A copy with some fields changed (validated again).

        >>> Grid((4, 4)).replace(spacing=2.0).spacing
        (2.0, 2.0)
        """
        return dataclasses.replace(self, **changes)

    # -- maps -------------------------------------------------------------------------------
    def physical_matrix(self) -> np.ndarray:
        """The homogeneous ``(n+1, n+1)`` matrix taking an index to its physical point."""
        n = self.ndim
        m = np.eye(n + 1)
        m[:n, :n] = np.asarray(self.direction) * np.asarray(self.spacing)
        m[:n, n] = self.origin
        return m

    def to_physical(self) -> Affine:
        """The transform taking index coordinates to physical ones (an :class:`Affine`)."""
        return Affine(self.physical_matrix())

    def to_index(self) -> Affine:
        """The transform taking physical coordinates to (fractional) index coordinates."""
        return Affine(np.linalg.inv(self.physical_matrix()))

    # -- derived geometry -------------------------------------------------------------------
    def corners(self) -> np.ndarray:
        """Physical positions of the ``2**n`` corner voxel centres, shape ``(2**n, n)``."""
        n = self.ndim
        idx = np.array(np.meshgrid(*[[0, max(s - 1, 0)] for s in self.shape], indexing="ij"))
        return self.to_physical()(idx.reshape(n, -1).T.astype(np.float64))

    @property
    def extent(self) -> tuple[tuple[float, float], ...]:
        """Per physical axis, the (min, max) of the voxel centres."""
        c = self.corners()
        return tuple((float(lo), float(hi)) for lo, hi in zip(c.min(0), c.max(0), strict=True))

    def is_axis_aligned(self) -> bool:
        """Whether ``direction`` is the identity (no rotation, no flip)."""
        return bool(np.array_equal(np.asarray(self.direction), np.eye(self.ndim)))

    # -- grids derived from this one ---------------------------------------------------------
    def subgrid(self, start, step, shape) -> Grid:
        """The grid of the points ``start + step * i`` of this grid's index space.

        A crop, a strided view and a zoom all sample a grid this way; the new grid keeps
        ``direction`` (a column flips sign where ``step`` is negative), its spacing is
        ``spacing * |step|`` and its origin the physical point of ``start``. A zero step
        (every output point reads the same index) keeps the spacing.

        >>> g = Grid((10, 10), spacing=(2.0, 1.0), origin=(5.0, 0.0))
        >>> s = g.subgrid(start=(2, 9), step=(3, -1), shape=(3, 10))
        >>> s.origin, s.spacing, s.direction
        ((9.0, 9.0), (6.0, 1.0), ((1.0, 0.0), (0.0, -1.0)))
        """
        n = self.ndim
        start = np.asarray(_tuple_of_floats(start, n, "start", 0.0))
        step = np.asarray(_tuple_of_floats(step, n, "step", 1.0))
        sign = np.where(step < 0, -1.0, 1.0)
        size = np.where(step == 0, 1.0, np.abs(step))
        origin = self.physical_matrix() @ np.append(start, 1.0)
        return Grid(
            shape,
            spacing=tuple((np.asarray(self.spacing) * size).tolist()),
            origin=tuple(origin[:n].tolist()),
            direction=np.asarray(self.direction) * sign,
            axes=self.axes,
            units=self.units,
        )

    def drop_axes(self, axes) -> Grid:
        """The grid without the array axes ``axes`` (each of length 1) and their physical
        axes: a plane of a volume. Exact only when the remaining axes have no component
        along a dropped physical axis (otherwise the plane is oblique in physical space and
        no lower-dimensional grid describes it: ValueError).

        >>> Grid((1, 4, 5), origin=(7.0, 1.0, 2.0)).drop_axes([0]).origin
        (1.0, 2.0)
        """
        drop = sorted({int(a) % self.ndim for a in axes})
        keep = [a for a in range(self.ndim) if a not in drop]
        if not keep:
            raise ValueError(f"axes={list(axes)} would drop every axis of the grid")
        d = np.asarray(self.direction)
        if np.any(d[np.ix_(drop, keep)] != 0):
            raise ValueError(
                f"dropping axes {drop} of a grid with direction {d.tolist()} leaves an "
                "oblique plane of physical space, which no grid of fewer axes describes; "
                "keep the axis (a slice of length 1) instead"
            )

        def pick(values):
            return tuple(values[a] for a in keep)

        return Grid(
            pick(self.shape),
            spacing=pick(self.spacing),
            origin=pick(self.origin),
            direction=d[np.ix_(keep, keep)],
            axes=pick(self.axes),
            units=pick(self.units),
        )

    # -- ITK's (x, y, z) order --------------------------------------------------------------
    @classmethod
    def from_itk(cls, size, spacing=None, origin=None, direction=None, units=None) -> Grid:
        """A grid from ITK/SimpleITK values, all in ``(x, y, z)`` order.

        ``size``, ``spacing``, ``origin`` are ``GetSize()``, ``GetSpacing()``,
        ``GetOrigin()``; ``direction`` is ``GetDirection()`` (row-major, ``n*n`` numbers).

        >>> g = Grid.from_itk(size=(30, 20, 10), spacing=(1.0, 1.0, 2.5))
        >>> g.shape, g.spacing
        ((10, 20, 30), (2.5, 1.0, 1.0))
        """
        size = _shape(size)
        n = len(size)
        d = np.eye(n) if direction is None else np.asarray(direction, dtype=np.float64)
        if d.shape == (n * n,):
            d = d.reshape(n, n)
        if d.shape != (n, n):
            raise ValueError(f"direction must be {n}x{n} or hold {n * n} numbers")

        def rev(v):
            return None if v is None else tuple(np.broadcast_to(v, (n,)).tolist())[::-1]

        if units is not None and not isinstance(units, str):
            units = tuple(units)[::-1]
        return cls(
            size[::-1],
            spacing=rev(spacing),
            origin=rev(origin),
            direction=d[::-1, ::-1],
            units=units,
        )

    def to_itk(self) -> dict:
        """``size``, ``spacing``, ``origin``, ``direction`` in ITK's ``(x, y, z)`` order.

        >>> Grid((10, 20), spacing=(2.0, 1.0)).to_itk()["spacing"]
        (1.0, 2.0)
        """
        d = np.asarray(self.direction)[::-1, ::-1]
        return {
            "size": self.shape[::-1],
            "spacing": self.spacing[::-1],
            "origin": self.origin[::-1],
            "direction": tuple(float(v) for v in d.ravel()),
        }

    def __dask_tokenize__(self):
        return ("transfuse.Grid", *dataclasses.astuple(self))

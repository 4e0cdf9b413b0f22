"""Displacement fields: :class:`DisplacementField`.

The field describes itself; it is interpolated by an executor (planned as a field stage,
see :mod:`transfuse.planner.physical`), also when points are mapped with ``T(points)``."""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from functools import cached_property

import numpy as np

from ..params import MODES, as_scalar
from ..sympy_types import is_sympy
from .base import (
    NonlinearTransform,
    array_token,
    evaluator,
    format_values,
    freeze_array,
    is_dask,
    per_axis,
)

_MODES = MODES


def _check_order(order) -> int:
    if isinstance(order, bool | np.bool_) or not isinstance(order, numbers.Integral):
        raise ValueError(f"order={order!r} must be an integer from 0 to 5")
    if not 0 <= int(order) <= 5:
        raise ValueError(f"order={order!r} must be an integer from 0 to 5")
    return int(order)


def _check_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"mode={mode!r} is not one of {sorted(_MODES)}")
    return _MODES[mode]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class DisplacementField(NonlinearTransform):
    """A displacement field ``p -> p + u(p)`` (pull direction: ``u`` says where each output
    point reads the input, relative to itself).

    ``u`` is sampled from ``field`` at the grid coordinates ``(p - origin) / spacing`` with
    :func:`scipy.ndimage.map_coordinates` semantics for ``order``, ``mode`` and ``cval``
    (``order > 1`` prefilters the field exactly as scipy does). Displacements are in the
    index units of the input image, like ``p``.

    In a chain, the field is sampled at the points the transforms to its right produce, so
    ``A @ field @ B`` is the true composition ``p -> A(B(p) + u(B(p)))``, not a sum of fields.

    Parameters
    ----------
    field : array_like or dask.array.Array, shape (ndim, *grid)
        ``field[k]`` is the displacement along axis ``k``; ``grid`` has ``ndim`` axes. A dask
        field (or a numpy field above
        :data:`~transfuse.planner.lower.FIELD_INLINE_BYTES`) is never loaded whole: each
        resampling task reads the field chunks its points reach, and its spline
        coefficients are computed chunk by chunk with a halo. Planning then reduces it
        once, chunk by chunk (a NaN check and per-chunk min/max for the footprints),
        unless ``max_displacement`` is given.
    spacing : float or sequence of float
        Distance (in image index units) between field samples, per axis; positive.
    origin : float or sequence of float
        Image position of field sample ``(0, ..., 0)``.
    order : int
        Spline order used to interpolate the field (0-5).
    mode : str
        How the field extends beyond its grid (any scipy.ndimage mode); default ``nearest``.
    cval : float
        Displacement outside the grid for ``constant``/``grid-constant``.
    max_displacement : float or sequence of float, optional
        A promise that ``|u[k]| <= max_displacement[k]`` wherever the field is sampled (the
        interpolated displacement, ``cval`` included). Footprints then come from it, so
        planning a dask field reads nothing; every task checks the promise on the values
        it samples and raises ValueError where it is broken (never a wrong answer). For
        ``order > 1`` leave a margin: a spline can overshoot the samples.

    Raises
    ------
    ValueError
        If ``field`` does not have shape ``(ndim, *grid)`` with ``ndim`` grid axes, holds
        NaN or infinities (numpy; a dask field is checked when planned), or a parameter is
        out of range.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((2, 5, 5)); u[1] = 0.5          # move every point by +0.5 along x
    >>> D = DisplacementField(u, spacing=4)
    >>> D([[3.0, 7.0]])
    array([[3. , 7.5]])
    >>> from transfuse import Scale
    >>> (D @ Scale(2))([[1.0, 1.0]])                  # the field is read at the scaled point
    array([[2. , 2.5]])
    """

    field: object = None
    spacing: object = 1.0
    origin: object = 0.0
    order: int = 1
    mode: str = "nearest"
    cval: float = 0.0
    max_displacement: object = None

    def __post_init__(self):
        field = freeze_array(self.field, "field", min_ndim=2)
        ndim = field.ndim - 1
        if field.shape[0] != ndim:
            raise ValueError(
                f"field must have shape (ndim, *grid) with one component per grid axis: a "
                f"{ndim}-D grid needs a leading dimension of {ndim}, got shape "
                f"{tuple(field.shape)}"
            )
        if any(n < 1 for n in field.shape[1:]):
            raise ValueError(f"field has an empty grid: shape {tuple(field.shape)}")
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "spacing", per_axis(self.spacing, "spacing", ndim, True))
        object.__setattr__(self, "origin", per_axis(self.origin, "origin", ndim))
        object.__setattr__(self, "order", _check_order(self.order))
        object.__setattr__(self, "mode", _check_mode(self.mode))
        cval = as_scalar(self.cval, "cval")
        if is_sympy(cval):
            raise ValueError(f"cval={self.cval!r} must be a number")
        object.__setattr__(self, "cval", cval)
        if self.max_displacement is not None:
            limit = per_axis(self.max_displacement, "max_displacement", ndim, True)
            if not all(math.isfinite(v) for v in limit):
                raise ValueError(f"max_displacement={self.max_displacement!r} must be finite")
            if self.mode in ("constant", "grid-constant") and abs(cval) > min(limit):
                raise ValueError(
                    f"max_displacement={self.max_displacement!r} must cover cval={cval!r} "
                    "(the displacement outside the grid)"
                )
            object.__setattr__(self, "max_displacement", limit)

    @property
    def ndim(self):
        return int(self.field.shape[0])

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Shape of the field's grid."""
        return tuple(int(n) for n in self.field.shape[1:])

    def params(self):
        out = {
            "field": array_token(self.field),
            "spacing": self.spacing,
            "origin": self.origin,
            "order": self.order,
            "mode": self.mode,
            "cval": self.cval,
        }
        if self.max_displacement is not None:  # absent by default: keys stay as they were
            out["max_displacement"] = self.max_displacement
        return out

    def __repr__(self):
        kind = "dask " if is_dask(self.field) else ""
        return (
            f"DisplacementField({kind}field shape={tuple(self.field.shape)}, "
            f"spacing={format_values(self.spacing)}, origin={format_values(self.origin)}, "
            f"order={self.order}, "
            f"mode={self.mode!r}" + (f", cval={self.cval:g})" if self.cval else ")")
        )

    # -- evaluation ---------------------------------------------------------------------
    def values(self) -> np.ndarray:
        """The field as a numpy array (a dask field is computed and checked for NaN)."""
        return self._c_values

    @cached_property
    def _c_values(self) -> np.ndarray:
        if not is_dask(self.field):
            return self.field
        arr = np.array(self.field.compute(), dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("field contains NaN or infinite values")
        arr.setflags(write=False)
        return arr

    def grid_coordinates(self, coords: np.ndarray) -> np.ndarray:
        """Field grid coordinates ``(p - origin) / spacing`` of points ``(ndim, ...)``."""
        out = np.empty_like(coords, dtype=np.float64)
        for a in range(self.ndim):
            np.divide(coords[a] - self.origin[a], self.spacing[a], out=out[a])
        return out

    def displacement(self, coords: np.ndarray) -> np.ndarray:
        """``u`` at points ``(ndim, ...)`` (image index space)."""
        coords = np.asarray(coords, dtype=np.float64)
        return evaluator().points(self, coords) - coords

    def node_coordinates(self) -> np.ndarray:
        """Image positions of the field's samples, shape ``(ndim, *grid)``."""
        axes = [
            o + s * np.arange(n)
            for o, s, n in zip(self.origin, self.spacing, self.grid_shape, strict=True)
        ]
        return np.stack(np.meshgrid(*axes, indexing="ij"))

    # -- inverse ------------------------------------------------------------------------
    def inverse(self, tol: float = 1e-6, max_iter: int = 200) -> DisplacementField:
        """The inverse displacement field on the same grid, by fixed-point iteration.

        Solves ``v(q) = -u(q + v(q))`` at every grid node ``q`` (so that
        ``(self @ inverse)(q) == q``) with ``v_{k+1}(q) = -u(q + v_k(q))``, ``v_0 = -u(q)``.
        The iteration contracts where ``u`` is Lipschitz with a constant below 1 (no
        folding); it stops when the residual is at most ``tol``.

        Parameters
        ----------
        tol : float
            Largest allowed residual ``max_q |q + v(q) + u(q + v(q)) - q|`` over the grid
            nodes (image index units, max norm over axes).
        max_iter : int
            Iterations at most. If the residual is still above ``tol`` a RuntimeWarning is
            issued (the field may fold, i.e. not be invertible).

        Returns
        -------
        DisplacementField
            Same grid, spacing, origin, order, mode and cval. Its attributes ``residual``
            (the final residual) and ``iterations`` report the convergence.

        Notes
        -----
        The inverse is exact to ``tol`` at the grid nodes. Between nodes ``v`` is
        interpolated like any field, so ``self @ inverse`` and ``inverse @ self`` are the
        identity to ``tol`` plus the interpolation error of ``v`` (small for smooth fields:
        see the tests for measured values).

        Examples
        --------
        >>> import numpy as np
        >>> y, x = np.mgrid[0:16, 0:16] * 1.0
        >>> u = 0.8 * np.stack([np.sin(x / 5), np.cos(y / 4)])
        >>> D = DisplacementField(u, order=3)
        >>> Dinv = D.inverse(tol=1e-8)
        >>> bool(Dinv.residual <= 1e-8)
        True
        >>> q = D.node_coordinates()
        >>> bool(np.abs(D.apply(Dinv.apply(q)) - q).max() <= 1e-8)
        True
        """
        tol = float(tol)
        if not tol > 0:
            raise ValueError(f"tol={tol!r} must be positive")
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral):
            raise ValueError(f"max_iter={max_iter!r} must be a positive integer")
        if max_iter < 1:
            raise ValueError(f"max_iter={max_iter!r} must be a positive integer")
        q = self.node_coordinates()
        v = -self.displacement(q)
        residual = math.inf
        iterations = 0
        best = (math.inf, v)
        for iterations in range(1, int(max_iter) + 1):  # noqa: B007
            v_new = -self.displacement(q + v)
            residual = float(np.abs(v_new - v).max())  # = max |q + v + u(q + v) - q|
            if residual < best[0]:
                best = (residual, v)
            if residual <= tol:
                break
            v = v_new
        residual, v = best
        if residual > tol:
            warnings.warn(
                f"DisplacementField.inverse did not reach tol={tol:g} in {max_iter} "
                f"iterations (residual {residual:.3g}); the field may not be invertible",
                RuntimeWarning,
                stacklevel=2,
            )
        out = DisplacementField(v, self.spacing, self.origin, self.order, self.mode, self.cval)
        object.__setattr__(out, "residual", residual)
        object.__setattr__(out, "iterations", iterations)
        return out

"""Maps computed by a Python callable: :class:`FunctionMap`."""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from .base import NonlinearTransform, _fmt, _per_axis


def _callable_token(func) -> str:
    module = getattr(func, "__module__", None) or type(func).__module__
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{name}@{id(func):x}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class FunctionMap(NonlinearTransform):
    """A pull map computed by a Python callable (the case of
    :func:`scipy.ndimage.geometric_transform`).

    Parameters
    ----------
    func : callable
        With ``vectorized=True`` (default): ``func(coords) -> coords_in`` where ``coords`` is a
        float64 array of shape ``(ndim, N)`` of output coordinates (index space, axis order)
        and the result has the same shape (input coordinates). It is called once per output
        chunk, with that chunk's points. With ``vectorized=False``: scipy's
        ``geometric_transform`` convention, ``func(point_tuple) -> point_tuple``, called
        once per point (slow; for compatibility).
    ndim : int
        The dimension.
    bounds : None, float, sequence of float or callable, optional
        How far the input points of a region can be from it, for footprints:

        * None (default): anywhere — every output chunk depends on the whole input;
        * a margin ``m`` (one number or one per axis): ``|func(p)[k] - p[k]| <= m[k]``;
        * a callable ``bounds(lo, hi) -> (lo_in, hi_in)`` taking arrays of shape
          ``(nboxes, ndim)`` (corners of boxes of output points) and returning a box per
          row that contains ``func`` of every point of the box (it must be sound).
    vectorized : bool

    Notes
    -----
    Keys (and equality) use the identity of ``func`` (and of a callable ``bounds``): two
    different function objects never share a key, even if they compute the same thing.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi, transfuse
    >>> def shear(c):
    ...     return np.stack([c[0], c[1] + 0.25 * c[0]])
    >>> F = FunctionMap(shear, ndim=2, bounds=(0, 3))
    >>> F([[4.0, 1.0]])
    array([[4., 2.]])
    >>> x = np.random.default_rng(0).random((8, 9))
    >>> out = transfuse.lazy(x, chunks=4).transform(F, order=1).compute()
    >>> ref = ndi.geometric_transform(x, lambda p: (p[0], p[1] + 0.25 * p[0]), order=1)
    >>> bool(np.allclose(out, ref))
    True
    """

    func: object = None
    ndim: int = None
    bounds: object = None
    vectorized: bool = True

    def __post_init__(self):
        if not callable(self.func):
            raise ValueError(f"func={self.func!r} is not callable")
        n = self.ndim
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"ndim={n!r} must be a positive integer")
        object.__setattr__(self, "ndim", int(n))
        b = self.bounds
        if b is not None and not callable(b):
            b = _per_axis(b, "bounds", int(n))
            if any(v < 0 for v in b):
                raise ValueError(f"bounds={self.bounds!r} must be non-negative margins")
        object.__setattr__(self, "bounds", b)
        if not isinstance(self.vectorized, bool | np.bool_):
            raise ValueError(f"vectorized={self.vectorized!r} must be True or False")
        object.__setattr__(self, "vectorized", bool(self.vectorized))

    def params(self):
        b = self.bounds
        return {
            "func": _callable_token(self.func),
            "ndim": self.ndim,
            "bounds": _callable_token(b) if callable(b) else b,
            "vectorized": self.vectorized,
        }

    def __repr__(self):
        name = getattr(self.func, "__qualname__", type(self.func).__name__)
        b = self.bounds
        if b is None:
            bound = "whole input"
        elif callable(b):
            bound = getattr(b, "__qualname__", "callable")
        else:
            bound = f"margin {_fmt(b)}"
        return f"FunctionMap({name}, ndim={self.ndim}, bounds={bound})"

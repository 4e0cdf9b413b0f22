"""The affine family: transforms with an (n+1, n+1) homogeneous pull matrix."""

from __future__ import annotations

import dataclasses

import numpy as np

from .base import Transform, symbolic_or_numeric, to_float
from .params import as_axes, as_ndim, as_scalar, as_vector, is_symbolic
from .sympy_types import is_sympy, is_sympy_matrix

__all__ = [
    "AffineTransform",
    "Identity",
    "Translate",
    "Scale",
    "Rotate",
    "Shear",
    "Affine",
    "Flip",
    "Permute",
]


def _identity_entries(ndim: int) -> list[list]:
    return [[1.0 if i == j else 0.0 for j in range(ndim + 1)] for i in range(ndim + 1)]


def _check_axes_fit(axes, ndim, name):
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{name}={axes!r} is out of range for ndim={ndim}")
    out = tuple(ax % ndim for ax in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axes!r} repeats an axis for ndim={ndim}")
    return out


@dataclasses.dataclass(frozen=True, repr=False)
class AffineTransform(Transform):
    """Base class of transforms given by a homogeneous matrix."""

    is_affine = True

    def _entries(self, ndim: int, exact: bool = False) -> list[list]:
        raise NotImplementedError

    def matrix(self, ndim: int | None = None, exact: bool = False):
        """The homogeneous ``(n+1, n+1)`` pull matrix.

        Parameters
        ----------
        ndim : int, optional
            The dimension, needed only when the parameters do not fix it.
        exact : bool
            Return a sympy Matrix even when every parameter is a number (angles then give
            exact trigonometric values, e.g. ``sqrt(3)/2`` for 30°).

        Returns
        -------
        numpy.ndarray or sympy.Matrix
            An exact sympy Matrix when a parameter has free symbols or ``exact=True``;
            float64 otherwise, also for sympy parameters without free symbols
            (``Rotate(sympy.pi)``, ``Translate((Rational(1, 2), 0))``), which are evaluated
            and rounded to float64.
        """
        ndim = self.resolve_ndim(ndim)
        return symbolic_or_numeric(self._entries(ndim, exact), symbolic=exact)

    def __call__(self, points):
        """Map points of shape ``(..., ndim)`` (output space) to input space."""
        points = np.asarray(points, dtype=np.float64)
        m = self.matrix(points.shape[-1])
        if is_sympy_matrix(m):
            raise ValueError(f"free symbols {sorted(map(str, self.free_symbols))} are unbound")
        n = points.shape[-1]
        return points @ m[:n, :n].T + m[:n, n]

    def inverse(self):
        m = self.matrix()
        return Affine(_invert(m, type(self).__name__))


def _invert(m, owner: str):
    if is_sympy_matrix(m):
        import sympy

        det = sympy.simplify(m.det())
        if det == 0:
            raise ValueError(f"{owner}: the matrix is singular and cannot be inverted")
        return m.inv().applyfunc(sympy.simplify)
    n = m.shape[0] - 1
    lin = m[:n, :n]
    if not np.all(np.isfinite(lin)) or np.linalg.cond(lin) > 1e14:
        raise ValueError(
            f"{owner}: the matrix is singular (condition number "
            f"{np.linalg.cond(lin):.3g}) and cannot be inverted"
        )
    return np.linalg.inv(m)


@dataclasses.dataclass(frozen=True, repr=False)
class Identity(AffineTransform):
    """The identity map; takes the dimension of what it is composed with.

    Examples
    --------
    >>> from transfuse import Identity
    >>> Identity().matrix(2)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """

    ndim: int | None = None

    def __post_init__(self):
        if self.ndim is not None:
            object.__setattr__(self, "ndim", as_ndim(self.ndim))

    def _entries(self, ndim, exact=False):
        return _identity_entries(ndim)

    def inverse(self):
        return self


@dataclasses.dataclass(frozen=True, repr=False)
class Translate(AffineTransform):
    """``p -> p + vector``.

    Examples
    --------
    >>> from transfuse import Translate
    >>> Translate((1, -2))([[0.0, 0.0]])
    array([[ 1., -2.]])
    """

    vector: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "vector", as_vector(self.vector, "vector"))

    @property
    def ndim(self):
        return len(self.vector)

    def _entries(self, ndim, exact=False):
        e = _identity_entries(ndim)
        for i, v in enumerate(self.vector):
            e[i][ndim] = v
        return e

    def inverse(self):
        return Translate(tuple(-v for v in self.vector))


@dataclasses.dataclass(frozen=True, repr=False)
class Scale(AffineTransform):
    """``p -> factors * p`` (a scalar factor is uniform and takes its dimension from context).

    Examples
    --------
    >>> from transfuse import Scale
    >>> Scale((2, 3))([[1.0, 1.0]])
    array([[2., 3.]])
    """

    factors: object = 1.0

    def __post_init__(self):
        if np.ndim(self.factors) == 0 or is_sympy(self.factors):
            value = as_scalar(self.factors, "factors")
        else:
            value = as_vector(self.factors, "factors")
        object.__setattr__(self, "factors", value)

    @property
    def ndim(self):
        return len(self.factors) if isinstance(self.factors, tuple) else None

    def _factor_list(self, ndim):
        if isinstance(self.factors, tuple):
            return list(self.factors)
        return [self.factors] * ndim

    def _entries(self, ndim, exact=False):
        e = _identity_entries(ndim)
        for i, f in enumerate(self._factor_list(ndim)):
            e[i][i] = f
        return e

    def inverse(self):
        fs = self.factors if isinstance(self.factors, tuple) else (self.factors,)
        if any((f == 0) is True or f == 0 for f in fs):
            raise ValueError(f"Scale: factors={self.factors!r} has a zero; cannot invert")

        def inv(f):
            return 1 / f if is_symbolic(f) else 1.0 / f

        if isinstance(self.factors, tuple):
            return Scale(tuple(inv(f) for f in self.factors))
        return Scale(inv(self.factors))


@dataclasses.dataclass(frozen=True, repr=False)
class Rotate(AffineTransform):
    """Rotation by ``angle`` degrees in the plane of ``axes``, about ``center``.

    As a pull map, ``c[i] = cos·o[i] - sin·o[j]`` and ``c[j] = sin·o[i] + cos·o[j]`` for
    ``axes=(i, j)`` (relative to the centre). ``Rotate(a, axes=(1, 0))`` has the matrix that
    :func:`scipy.ndimage.rotate` uses for ``angle=a``.

    Parameters
    ----------
    angle : float or sympy expression
        Degrees.
    axes : pair of int
        The plane of rotation; swapping them reverses the sense.
    center : sequence of float, optional
        Fixed point; the origin when omitted.
    ndim : int, optional
        Dimension; otherwise taken from ``center`` or from what it is composed with.
    output_center : sequence of float, optional
        Where ``center`` sits in output space when the two grids differ (as in
        :func:`scipy.ndimage.rotate` with ``reshape=True``): ``c = R (o - output_center) +
        center``. Default: ``center``.

    Examples
    --------
    >>> from transfuse import Rotate
    >>> Rotate(90).matrix(2) + 0.0  # exact: cos(90°) is 0
    array([[ 0., -1.,  0.],
           [ 1.,  0.,  0.],
           [ 0.,  0.,  1.]])
    """

    angle: object = 0.0
    axes: tuple = (0, 1)
    center: tuple | None = None
    ndim: int | None = None
    output_center: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "angle", as_scalar(self.angle, "angle"))
        axes = as_axes(self.axes, "axes", count=2)
        if self.center is not None:
            object.__setattr__(self, "center", as_vector(self.center, "center"))
        if self.output_center is not None:
            if self.center is None:
                raise ValueError("output_center needs center to be given")
            oc = as_vector(self.output_center, "output_center")
            if len(oc) != len(self.center):
                raise ValueError(
                    f"output_center={self.output_center!r} must have {len(self.center)} entries"
                )
            object.__setattr__(self, "output_center", None if oc == self.center else oc)
        if self.ndim is not None:
            object.__setattr__(self, "ndim", as_ndim(self.ndim, minimum=2))
            if self.center is not None and len(self.center) != self.ndim:
                raise ValueError(f"center={self.center!r} does not have ndim={self.ndim} entries")
        if self.ndim is None and self.center is not None:
            object.__setattr__(self, "ndim", len(self.center))
        n = self.ndim
        if n is not None:
            axes = _check_axes_fit(axes, n, "axes")
        elif min(axes) < 0:
            raise ValueError(f"axes={axes!r}: negative axes need ndim or center to be given")
        object.__setattr__(self, "axes", axes)

    def params(self) -> dict:
        out = super().params()
        if out["output_center"] is None:
            del out["output_center"]  # the common case reads as before
        return out

    def _cos_sin(self, exact=False):
        a = self.angle
        if is_symbolic(a) and not exact and not a.free_symbols:
            a = to_float(a, "angle")  # a constant: the matrix of its float value
        if exact or is_symbolic(a):
            import sympy

            if not is_symbolic(a):
                a = sympy.Integer(int(a)) if float(a).is_integer() else sympy.Float(a)
            try:
                rad = sympy.pi * a / 180
                return sympy.cos(rad), sympy.sin(rad)
            except Exception as exc:  # an error inside sympy's simplification
                raise ValueError(f"angle={str(self.angle)[:80]}: sympy cannot evaluate it") from exc
        from scipy import special  # scipy.ndimage.rotate's functions: the same bits

        return float(special.cosdg(a)), float(special.sindg(a))

    def _entries(self, ndim, exact=False):
        i, j = _check_axes_fit(self.axes, ndim, "axes")
        if ndim < 2 or i == j:
            raise ValueError(f"Rotate needs two distinct axes of an ndim >= 2 space, got {ndim}")
        c, s = self._cos_sin(exact)
        e = _identity_entries(ndim)
        e[i][i], e[i][j], e[j][i], e[j][j] = c, -s, s, c
        if self.center is not None:
            ctr = list(self.center)
            octr = ctr if self.output_center is None else list(self.output_center)
            plane = sorted((i, j))
            if exact or is_symbolic((c, s, *ctr, *octr)):
                for row in plane:
                    e[row][ndim] = ctr[row] - sum(e[row][k] * octr[k] for k in plane)
            else:
                # the rotation of the centre as scipy.ndimage.rotate computes it (a numpy
                # matrix product), so that offsets agree to the last bit
                rot = np.array([[e[a][b] for b in plane] for a in plane], dtype=np.float64)
                moved = rot @ np.array([octr[k] for k in plane], dtype=np.float64)
                for row, m in zip(plane, moved, strict=True):
                    e[row][ndim] = float(ctr[row] - m)
        return e

    def inverse(self):
        if self.output_center is not None:
            return dataclasses.replace(
                self, angle=-self.angle, center=self.output_center, output_center=self.center
            )
        return dataclasses.replace(self, angle=-self.angle)


@dataclasses.dataclass(frozen=True, repr=False)
class Shear(AffineTransform):
    """``c[axes[0]] = o[axes[0]] + factor * o[axes[1]]``; other coordinates unchanged.

    Examples
    --------
    >>> from transfuse import Shear
    >>> Shear(0.5)([[2.0, 4.0]])
    array([[4., 4.]])
    """

    factor: object = 0.0
    axes: tuple = (0, 1)
    ndim: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "factor", as_scalar(self.factor, "factor"))
        axes = as_axes(self.axes, "axes", count=2)
        if self.ndim is not None:
            object.__setattr__(self, "ndim", as_ndim(self.ndim, minimum=2))
            axes = _check_axes_fit(axes, self.ndim, "axes")
        elif min(axes) < 0:
            raise ValueError(f"axes={axes!r}: negative axes need ndim to be given")
        object.__setattr__(self, "axes", axes)

    def _entries(self, ndim, exact=False):
        i, j = _check_axes_fit(self.axes, ndim, "axes")
        e = _identity_entries(ndim)
        e[i][j] = self.factor
        return e

    def inverse(self):
        return dataclasses.replace(self, factor=-self.factor)


def split_affine_matrix(matrix, offset=0.0, ndim: int | None = None, name="matrix"):
    """Split any matrix form scipy accepts into an ``(n, n)`` linear part and an offset.

    Accepted: ``(n,)`` (diagonal), ``(n, n)``, ``(n, n+1)``, ``(n+1, n+1)`` (homogeneous, the
    bottom row must be ``[0, ..., 0, 1]``). With the last two, the offset is the last column
    and ``offset`` must be left at 0.

    Parameters
    ----------
    matrix : array_like or sympy.Matrix
    offset : float or sequence
    ndim : int, optional
        The dimension the matrix must have. Needed to tell ``(n+1, n+1)`` from ``(n, n)``
        when a square matrix happens to end in ``[0, ..., 0, 1]``; without it such a matrix
        is read as homogeneous.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    linear : tuple of tuples
    offset : tuple

    Raises
    ------
    ValueError
        For any other shape, a bad bottom row, non-finite entries or a wrong ``ndim``.
    """
    if is_sympy_matrix(matrix):
        arr = np.array(matrix.tolist(), dtype=object)
    else:
        try:
            arr = np.asarray(matrix)
        except ValueError as exc:  # ragged sequences
            raise ValueError(f"{name}={matrix!r} is not a matrix") from exc
        if arr.dtype != object and arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    shape_error = ValueError(
        f"{name} must have shape (n,), (n, n), (n, n+1) or (n+1, n+1)"
        f"{'' if ndim is None else f' with n={ndim}'}, got shape {arr.shape}"
    )
    if arr.ndim == 1 and arr.size:
        n, kind = arr.shape[0], "diagonal"
    elif arr.ndim == 2 and arr.size:
        rows, cols = arr.shape
        if cols == rows + 1:
            n, kind = rows, "offset-column"
        elif rows == cols and (ndim == rows - 1 or (ndim is None and _is_homogeneous(arr))):
            n, kind = rows - 1, "homogeneous"
        elif rows == cols:
            n, kind = rows, "linear"
        else:
            raise shape_error
    else:
        raise shape_error
    if n < 1 or (ndim is not None and n != ndim):
        raise shape_error
    if kind == "homogeneous":
        bottom = list(arr[n])
        if not _is_homogeneous(arr):
            raise ValueError(
                f"{name}: the bottom row of a homogeneous matrix must be {[0] * n + [1]}, "
                f"got {bottom}"
            )
    if kind in ("homogeneous", "offset-column"):
        if np.ndim(offset) != 0 or not _equals(offset, 0.0):
            raise ValueError(f"offset={offset!r} must be 0 when {name} has an offset column")
        off = list(arr[:n, n])
        lin = [[arr[i, j] for j in range(n)] for i in range(n)]
    else:
        off = [offset] * n if np.ndim(offset) == 0 else offset
        if kind == "diagonal":
            lin = [[arr[i] if i == j else 0.0 for j in range(n)] for i in range(n)]
        else:
            lin = [[arr[i, j] for j in range(n)] for i in range(n)]
    linear = tuple(
        tuple(as_scalar(lin[i][j], f"{name}[{i}, {j}]") for j in range(n)) for i in range(n)
    )
    return linear, as_vector(off, "offset", length=n)


def _is_homogeneous(arr) -> bool:
    rows, cols = arr.shape
    if rows != cols or rows < 2:
        return False
    return all(_equals(v, 1.0 if k == cols - 1 else 0.0) for k, v in enumerate(arr[-1]))


def _equals(value, target) -> bool:
    if is_sympy(value):  # sympy >= 1.13: Integer(0) == 0.0 is False
        return bool((value - target).is_zero)
    try:
        return bool(value == target)
    except TypeError:
        return False


@dataclasses.dataclass(frozen=True, repr=False)
class Affine(AffineTransform):
    """A general affine pull map ``p -> matrix @ p + offset``.

    ``matrix`` may take every form :func:`scipy.ndimage.affine_transform` accepts: ``(n,)``
    (diagonal), ``(n, n)``, ``(n, n+1)`` or ``(n+1, n+1)`` (homogeneous; bottom row checked).

    Examples
    --------
    >>> from transfuse import Affine
    >>> Affine([[1, 0, 5], [0, 2, 0]]).matrix()
    array([[1., 0., 5.],
           [0., 2., 0.],
           [0., 0., 1.]])
    >>> Affine([2, 3], offset=1).matrix()
    array([[2., 0., 1.],
           [0., 3., 1.],
           [0., 0., 1.]])
    """

    linear: tuple = ()
    offset: tuple = ()

    def __init__(self, matrix, offset=0.0, ndim=None):
        if ndim is not None:
            ndim = as_ndim(ndim)
        linear, offset = split_affine_matrix(matrix, offset, ndim=ndim, name="matrix")
        object.__setattr__(self, "linear", linear)
        object.__setattr__(self, "offset", offset)

    def _rebuild(self, **fields):
        params = {**self.params(), **fields}
        n = len(params["linear"])
        rows = [list(r) + [params["offset"][i]] for i, r in enumerate(params["linear"])]
        if any(is_symbolic(tuple(r)) for r in rows):
            import sympy

            return Affine(sympy.Matrix(rows))
        return Affine(np.array(rows, dtype=np.float64).reshape(n, n + 1))

    @property
    def ndim(self):
        return len(self.linear)

    def _entries(self, ndim, exact=False):
        n = ndim
        e = [list(row) + [self.offset[i]] for i, row in enumerate(self.linear)]
        e.append([0.0] * n + [1.0])
        return e

    def inverse(self):
        return Affine(_invert(self.matrix(), "Affine"))


@dataclasses.dataclass(frozen=True, repr=False)
class Flip(AffineTransform):
    """Mirror the given axes about ``center``: ``c[a] = 2·center - o[a]``.

    To flip an image of ``n`` samples end for end (``np.flip``), use
    ``center=(n - 1) / 2`` or the image method :meth:`transfuse.LazyImage.flip`.

    Examples
    --------
    >>> from transfuse import Flip
    >>> Flip(0, center=1.5)([[0.0, 7.0]])
    array([[3., 7.]])
    """

    axes: tuple = (0,)
    center: object = 0.0
    ndim: int | None = None

    def __post_init__(self):
        axes = as_axes(self.axes, "axes")
        if not axes:
            raise ValueError("axes must name at least one axis")
        if np.ndim(self.center) == 0 and not isinstance(self.center, tuple):
            center = (as_scalar(self.center, "center"),) * len(axes)
        else:
            center = as_vector(self.center, "center", length=len(axes))
        object.__setattr__(self, "center", center)
        if self.ndim is not None:
            object.__setattr__(self, "ndim", as_ndim(self.ndim))
            axes = _check_axes_fit(axes, self.ndim, "axes")
        elif min(axes) < 0:
            raise ValueError(f"axes={axes!r}: negative axes need ndim to be given")
        object.__setattr__(self, "axes", axes)

    def _entries(self, ndim, exact=False):
        axes = _check_axes_fit(self.axes, ndim, "axes")
        e = _identity_entries(ndim)
        for ax, ctr in zip(axes, self.center, strict=True):
            e[ax][ax] = -1.0
            e[ax][ndim] = 2 * ctr
        return e

    def inverse(self):
        return self


@dataclasses.dataclass(frozen=True, repr=False)
class Permute(AffineTransform):
    """Reorder axes like ``np.transpose(x, order)``: output axis ``j`` reads input axis
    ``order[j]``.

    Examples
    --------
    >>> from transfuse import Permute
    >>> Permute((1, 0))([[1.0, 2.0]])
    array([[2., 1.]])
    """

    order: tuple = (0,)

    def __post_init__(self):
        order = as_axes(self.order, "order")
        if not order or sorted(order) != list(range(len(order))):
            raise ValueError(f"order={self.order!r} is not a permutation of 0..{len(order) - 1}")
        object.__setattr__(self, "order", order)

    @property
    def ndim(self):
        return len(self.order)

    def _entries(self, ndim, exact=False):
        e = [[0.0] * (ndim + 1) for _ in range(ndim + 1)]
        for j, src in enumerate(self.order):
            e[src][j] = 1.0
        e[ndim][ndim] = 1.0
        return e

    def inverse(self):
        return Permute(tuple(int(i) for i in np.argsort(self.order)))

"""Non-linear transform nodes: maps with no matrix, evaluated per output chunk.

Every node here is a pull map (output coordinates -> input coordinates) that composes with
``@`` with any other transform. The planner compiles a whole chain into one map evaluated
per output chunk (:func:`transfuse.planner.maps.compile_map`); nothing here ever builds a
full-size coordinate array.

* :class:`DisplacementField` — ``p -> p + u(p)``, ``u`` sampled from a gridded field.
* :class:`ExprMap` — one sympy expression of the output coordinates per input axis.
* :class:`FunctionMap` — a Python callable (the :func:`scipy.ndimage.geometric_transform`
  case).
* :class:`CoordinateMap` — absolute coordinates for every output point (defines the grid).
* :class:`InverseExprMap` — the numerical inverse of an :class:`ExprMap` (Newton).

Points passed to ``T(points)`` have shape ``(..., ndim)`` as for the affine transforms.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import warnings
from functools import cached_property

import numpy as np
import sympy
from scipy import ndimage

from .base import Transform
from .params import as_scalar, as_vector

__all__ = [
    "NonlinearTransform",
    "CoordinateMap",
    "DisplacementField",
    "ExprMap",
    "FunctionMap",
    "InverseExprMap",
    "array_token",
    "freeze_array",
]

#: scipy.ndimage's boundary modes and their canonical names. (The planner has the same table
#: in ``planner.options``; transforms do not import the planner.)
_MODES = {
    "constant": "constant",
    "grid-constant": "grid-constant",
    "nearest": "nearest",
    "reflect": "reflect",
    "grid-mirror": "reflect",
    "mirror": "mirror",
    "wrap": "wrap",
    "grid-wrap": "grid-wrap",
}


def array_token(array) -> str:
    """A content token of a numpy array, or the graph name of a dask array."""
    name = getattr(array, "name", None)
    if name is not None and hasattr(array, "dask"):
        return f"dask:{name}"
    arr = np.ascontiguousarray(array)
    digest = hashlib.sha256(arr.view(np.uint8).reshape(-1).tobytes()).hexdigest()
    return f"ndarray:{arr.dtype.str}:{arr.shape}:{digest}"


def _is_dask(array) -> bool:
    return hasattr(array, "dask") and hasattr(array, "chunks")


def freeze_array(array, name: str, *, min_ndim: int = 1):
    """A read-only float64 copy of a numpy array, or a dask array unchanged (as float64).

    Raises ValueError naming ``name`` for non-real dtypes, too few dimensions, or (numpy)
    NaN/inf entries.
    """
    if _is_dask(array):
        if np.dtype(array.dtype).kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
        if array.ndim < min_ndim:
            raise ValueError(f"{name} must have at least {min_ndim} dimensions, got {array.ndim}")
        return array.astype(np.float64) if array.dtype != np.float64 else array
    try:
        arr = np.array(array, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers") from exc
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    arr.setflags(write=False)
    return arr


def _points_last(points, ndim: int, owner: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] != ndim:
        raise ValueError(f"{owner}: points must have shape (..., {ndim}), got {points.shape}")
    return points


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class NonlinearTransform(Transform):
    """Base of transforms without a matrix. Equality and hashing go through :attr:`key`
    (array parameters are compared by content token).

    Subclasses evaluate themselves on coordinate arrays laid out like
    :func:`scipy.ndimage.map_coordinates` takes them, ``(ndim, ...)``, in :meth:`apply`;
    ``T(points)`` with points of shape ``(..., ndim)`` is the same map.
    """

    is_affine = False

    def __eq__(self, other):
        return type(self) is type(other) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    @property
    def free_symbols(self):
        return frozenset()

    def _substitute(self, subs):
        return self

    def apply(self, coords: np.ndarray) -> np.ndarray:
        """Map coordinates of shape ``(ndim, ...)`` (output space) to input space."""
        raise NotImplementedError(f"{type(self).__name__} cannot be evaluated point by point")

    def __call__(self, points):
        """Map points of shape ``(..., ndim)`` (output space) to input space."""
        ndim = self.resolve_ndim(None)
        pts = _points_last(points, ndim, type(self).__name__)
        return np.moveaxis(self.apply(np.moveaxis(pts, -1, 0)), 0, -1)

    def __getstate__(self):
        # compiled functions and samplers are rebuilt on demand (they may not pickle)
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_c_")}


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class CoordinateMap(NonlinearTransform):
    """Absolute input coordinates for every output point, as
    :func:`scipy.ndimage.map_coordinates` takes them: ``coords[:, i, j, ...]`` is where output
    point ``(i, j, ...)`` reads the input.

    It defines the output grid, so in a chain it can only be the rightmost (innermost)
    transform; transforms to its left are applied to its coordinates.

    Parameters
    ----------
    coords : array_like or dask.array.Array, shape (ndim_in, *output_shape)

    Examples
    --------
    >>> import numpy as np
    >>> m = CoordinateMap(np.zeros((2, 3, 4)))
    >>> m.ndim, m.output_shape
    (2, (3, 4))
    """

    coords: object = None

    def __post_init__(self):
        object.__setattr__(self, "coords", freeze_array(self.coords, "coords", min_ndim=2))

    @property
    def ndim(self):
        return int(self.coords.shape[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.coords.shape[1:])

    def params(self):
        return {"coords": array_token(self.coords)}

    def __repr__(self):
        return f"CoordinateMap(coords shape={tuple(self.coords.shape)})"


# ------------------------------------------------------------------------------------------
# Displacement fields
# ------------------------------------------------------------------------------------------


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


def _per_axis(value, name: str, ndim: int, positive: bool = False) -> tuple:
    if isinstance(value, sympy.Basic) or np.ndim(value) == 0:
        vec = (as_scalar(value, name),) * ndim
    else:
        vec = as_vector(value, name, length=ndim)
    for v in vec:
        if isinstance(v, sympy.Basic):
            raise ValueError(f"{name}={value!r} must be numbers (not symbolic)")
        if positive and not v > 0:
            raise ValueError(f"{name}={value!r} must be positive")
    return tuple(float(v) for v in vec)


class FieldSampler:
    """Samples a gridded vector field with :func:`scipy.ndimage.map_coordinates` semantics.

    For ``order > 1`` the spline coefficients are computed once, exactly as scipy does
    inside ``map_coordinates`` (12 samples of pre-padding for ``nearest``/``grid-constant``,
    then ``spline_filter`` with the mode), so every sample equals scipy's bit for bit.

    Parameters
    ----------
    field : ndarray, shape (ncomp, *grid)
        Sample values (float64, finite).
    order, mode, cval
        As in :func:`scipy.ndimage.map_coordinates` (``mode`` canonical).
    """

    def __init__(self, field: np.ndarray, order: int, mode: str, cval: float):
        self.order, self.mode, self.cval = order, mode, cval
        self.npad = 12 if order > 1 and mode in ("nearest", "grid-constant") else 0
        if order > 1:
            comps = []
            for comp in field:
                if self.npad:
                    if mode == "nearest":
                        comp = np.pad(comp, self.npad, mode="edge")
                    else:
                        comp = np.pad(comp, self.npad, mode="constant", constant_values=cval)
                comps.append(ndimage.spline_filter(comp, order, output=np.float64, mode=mode))
            coef = np.stack(comps)
        else:
            coef = np.array(field, dtype=np.float64)
        coef.setflags(write=False)
        #: the coefficient array the samples interpolate, shape (ncomp, *(grid + 2 npad))
        self.coefficients = coef
        self.grid_shape = tuple(int(n) for n in field.shape[1:])

    def sample(self, grid_coords: np.ndarray) -> np.ndarray:
        """Values at grid coordinates ``(ndim, ...)``; returns ``(ncomp, ...)``."""
        shifted = grid_coords + self.npad if self.npad else grid_coords
        out = np.empty((self.coefficients.shape[0], *grid_coords.shape[1:]))
        for k, coef in enumerate(self.coefficients):
            ndimage.map_coordinates(
                coef,
                shifted,
                output=out[k],
                order=self.order,
                mode=self.mode,
                cval=self.cval,
                prefilter=False,
            )
        return out

    def sample_affine(self, matrix: np.ndarray, offset: np.ndarray, shape) -> np.ndarray:
        """Values at the grid coordinates ``matrix @ o + offset`` for every index ``o`` of
        an array of ``shape``, with :func:`scipy.ndimage.affine_transform` (no coordinate
        array is built); returns ``(ncomp, *shape)``."""
        out = np.empty((self.coefficients.shape[0], *shape))
        off = offset + self.npad if self.npad else offset
        for k, coef in enumerate(self.coefficients):
            ndimage.affine_transform(
                coef,
                matrix,
                off,
                output_shape=tuple(shape),
                output=out[k],
                order=self.order,
                mode=self.mode,
                cval=self.cval,
                prefilter=False,
            )
        return out


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
        field is reduced once when a plan is made (NaN check, per-region min/max) and
        loaded into memory then (fields are usually coarse).
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
        object.__setattr__(self, "spacing", _per_axis(self.spacing, "spacing", ndim, True))
        object.__setattr__(self, "origin", _per_axis(self.origin, "origin", ndim))
        object.__setattr__(self, "order", _check_order(self.order))
        object.__setattr__(self, "mode", _check_mode(self.mode))
        cval = as_scalar(self.cval, "cval")
        if isinstance(cval, sympy.Basic):
            raise ValueError(f"cval={self.cval!r} must be a number")
        object.__setattr__(self, "cval", cval)

    @property
    def ndim(self):
        return int(self.field.shape[0])

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Shape of the field's grid."""
        return tuple(int(n) for n in self.field.shape[1:])

    def params(self):
        return {
            "field": array_token(self.field),
            "spacing": self.spacing,
            "origin": self.origin,
            "order": self.order,
            "mode": self.mode,
            "cval": self.cval,
        }

    def __repr__(self):
        kind = "dask " if _is_dask(self.field) else ""
        return (
            f"DisplacementField({kind}field shape={tuple(self.field.shape)}, "
            f"spacing={_fmt(self.spacing)}, origin={_fmt(self.origin)}, order={self.order}, "
            f"mode={self.mode!r}" + (f", cval={self.cval:g})" if self.cval else ")")
        )

    # -- evaluation ---------------------------------------------------------------------
    def values(self) -> np.ndarray:
        """The field as a numpy array (a dask field is computed and checked for NaN)."""
        return self._c_values

    @cached_property
    def _c_values(self) -> np.ndarray:
        if not _is_dask(self.field):
            return self.field
        arr = np.array(self.field.compute(), dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("field contains NaN or infinite values")
        arr.setflags(write=False)
        return arr

    @cached_property
    def _c_sampler(self) -> FieldSampler:
        return FieldSampler(self.values(), self.order, self.mode, self.cval)

    @property
    def sampler(self) -> FieldSampler:
        """The (cached) sampler of this field: spline coefficients and interpolation."""
        return self._c_sampler

    def grid_coordinates(self, coords: np.ndarray) -> np.ndarray:
        """Field grid coordinates ``(p - origin) / spacing`` of points ``(ndim, ...)``."""
        out = np.empty_like(coords, dtype=np.float64)
        for a in range(self.ndim):
            np.divide(coords[a] - self.origin[a], self.spacing[a], out=out[a])
        return out

    def displacement(self, coords: np.ndarray) -> np.ndarray:
        """``u`` at points ``(ndim, ...)`` (image index space)."""
        return self.sampler.sample(self.grid_coordinates(coords))

    def apply(self, coords):
        coords = np.asarray(coords, dtype=np.float64)
        return coords + self.displacement(coords)

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


def _fmt(values) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:g}"
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


# ------------------------------------------------------------------------------------------
# Expressions
# ------------------------------------------------------------------------------------------


def _as_symbols(coords) -> tuple:
    if isinstance(coords, str):
        coords = coords.replace(",", " ").split()
    elif isinstance(coords, sympy.Symbol):
        coords = (coords,)
    try:
        items = list(coords)
    except TypeError as exc:
        raise ValueError(f"coords={coords!r} must be a sequence of sympy symbols") from exc
    out = []
    for c in items:
        if isinstance(c, str):
            c = sympy.Symbol(c, real=True)
        if not isinstance(c, sympy.Symbol):
            raise ValueError(f"coords={coords!r} must be a sequence of sympy symbols or names")
        out.append(c)
    if not out:
        raise ValueError("coords must name at least one coordinate")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"coords={tuple(names)} repeats a name")
    return tuple(out)


_NON_REAL = (sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


def _as_expression(e, where: str, local: dict):
    if isinstance(e, str):
        try:
            e = sympy.sympify(e, locals=local)
        except (sympy.SympifyError, SyntaxError, TypeError) as exc:
            raise ValueError(f"{where}={e!r} is not a valid expression: {exc}") from exc
    elif isinstance(e, numbers.Real) and not isinstance(e, bool):
        if not math.isfinite(float(e)):
            raise ValueError(f"{where}={e!r} must be finite")
        e = sympy.Float(float(e)) if not float(e).is_integer() else sympy.Integer(int(e))
    if not isinstance(e, sympy.Expr):
        raise ValueError(f"{where}={e!r} is not a sympy expression")
    undefined = sorted(str(f) for f in e.atoms(sympy.core.function.AppliedUndef))
    if undefined:
        raise ValueError(f"{where}: unknown function(s) {', '.join(undefined)}")
    if any(e.has(bad) for bad in _NON_REAL):
        raise ValueError(f"{where}={e} is not real and finite")
    return e


def compile_expressions(expressions, coords):
    """A numpy function ``f(*coordinate_arrays) -> list of arrays`` for ``expressions``.

    Uses :func:`sympy.lambdify` (scipy and numpy modules, common subexpressions eliminated). Float
    constants are passed as arguments so that they keep every bit (lambdify would print them
    with 15 digits). Constant expressions are broadcast to the coordinates' shape.
    """
    floats = sorted(set().union(*(e.atoms(sympy.Float) for e in expressions)), key=sympy.srepr)
    dummies = [sympy.Dummy(f"c{i}") for i in range(len(floats))]
    subs = dict(zip(floats, dummies, strict=True))
    exprs = [e.xreplace(subs) for e in expressions]
    values = [float(f) for f in floats]
    func = sympy.lambdify([*coords, *dummies], exprs, modules=["scipy", "numpy"], cse=True)

    def evaluate(*arrays):
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        with np.errstate(all="ignore"):
            out = func(*arrays, *values)
        return [np.broadcast_to(np.asarray(o, dtype=np.float64), shape) for o in out]

    return evaluate


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ExprMap(NonlinearTransform):
    """A map given by sympy expressions: input coordinate ``k`` is ``expressions[k]``
    evaluated at the output point whose coordinates are ``coords`` (in axis order).

    Other symbols in the expressions are free parameters: bind them with
    :meth:`~transfuse.Transform.bind` (``.bind(k=0.1)``) as for the affine transforms. The
    expressions are compiled once with :func:`sympy.lambdify` (numpy) and evaluated per
    output chunk; footprints come from interval arithmetic over each chunk
    (:mod:`transfuse.planner.interval`).

    Parameters
    ----------
    expressions : sequence of sympy expressions or strings
        One per input axis (``len(expressions) == len(coords)``). Strings are parsed by
        :func:`sympy.sympify` with ``coords`` (and ``parameters``) in scope.
    coords : sequence of sympy.Symbol or str
        The symbols standing for the output axes, in axis order (a string like ``"y x"`` is
        split into real symbols). A symbol in the expressions with the name of a coordinate
        but other assumptions is taken to be that coordinate.
    parameters : sequence of str or sympy.Symbol, optional
        The names of the free parameters. When given, any other symbol is an error; when
        omitted, every symbol that is not a coordinate is a parameter.

    Raises
    ------
    ValueError
        Wrong number of expressions, an unknown symbol (with ``parameters``), an undefined
        function, a non-real constant, or a non-expression.

    Examples
    --------
    A barrel distortion about (10, 10) with a free strength ``k``:

    >>> import transfuse
    >>> y, x, k = transfuse.symbols("y x k")
    >>> r2 = (y - 10) ** 2 + (x - 10) ** 2
    >>> B = ExprMap([10 + (y - 10) * (1 + k * r2), 10 + (x - 10) * (1 + k * r2)], (y, x))
    >>> sorted(map(str, B.free_symbols))
    ['k']
    >>> B.bind(k=0.01)([[10.0, 12.0]])
    array([[10.  , 12.08]])
    """

    expressions: tuple = ()
    coords: tuple = ()
    parameters: tuple | None = None

    def __post_init__(self):
        coords = _as_symbols(self.coords)
        params = None
        if self.parameters is not None:
            items = (
                self.parameters.replace(",", " ").split()
                if isinstance(self.parameters, str)
                else list(self.parameters)
            )
            params = []
            for p in items:
                name = p.name if isinstance(p, sympy.Symbol) else p
                if not isinstance(name, str):
                    raise ValueError(f"parameters={self.parameters!r} must be names or symbols")
                params.append(name)
            params = tuple(sorted(set(params)))
            clash = set(params) & {c.name for c in coords}
            if clash:
                raise ValueError(f"parameters {sorted(clash)} are also coordinates")
        exprs = self.expressions
        if isinstance(exprs, str | sympy.Basic) or not hasattr(exprs, "__len__"):
            raise ValueError(
                f"expressions={exprs!r} must be a sequence with one expression per input axis"
            )
        exprs = list(exprs)
        if len(exprs) != len(coords):
            raise ValueError(
                f"expressions: got {len(exprs)} expression(s) for {len(coords)} coordinate(s) "
                f"{tuple(c.name for c in coords)}; give one expression per input axis"
            )
        local = {c.name: c for c in coords}
        for name in params or ():
            local.setdefault(name, sympy.Symbol(name, real=True))
        by_name = {c.name: c for c in coords}
        out = []
        for i, e in enumerate(exprs):
            e = _as_expression(e, f"expressions[{i}]", local)
            swap = {
                s: by_name[s.name]
                for s in e.free_symbols
                if s.name in by_name and s != by_name[s.name]
            }
            if swap:
                e = e.xreplace(swap)
            if params is not None:
                unknown = sorted(
                    s.name for s in e.free_symbols if s not in coords and s.name not in params
                )
                if unknown:
                    raise ValueError(
                        f"expressions[{i}]: unknown symbol(s) {', '.join(unknown)}; coordinates "
                        f"are {[c.name for c in coords]}, parameters {list(params)}"
                    )
            out.append(e)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "expressions", tuple(out))

    @property
    def ndim(self):
        return len(self.coords)

    @property
    def free_symbols(self):
        out: frozenset = frozenset()
        for e in self.expressions:
            out |= e.free_symbols
        return frozenset(out - set(self.coords))

    def params(self):
        return {
            "expressions": self.expressions,
            "coords": self.coords,
            "parameters": self.parameters,
        }

    def _substitute(self, subs):
        subs = {k: v for k, v in subs.items() if k not in self.coords}
        exprs = tuple(sympy.sympify(e.subs(subs)) for e in self.expressions)
        for e in exprs:
            if e.has(*_NON_REAL):
                raise ValueError(f"binding gives a non-real expression {e}")
        return ExprMap(exprs, self.coords, self.parameters)

    def __repr__(self):
        names = ", ".join(c.name for c in self.coords)
        body = ", ".join(str(e) for e in self.expressions)
        return f"ExprMap(({names}) -> ({body}))"

    # -- evaluation ---------------------------------------------------------------------
    def _check_bound(self):
        free = self.free_symbols
        if free:
            names = ", ".join(sorted(s.name for s in free))
            raise ValueError(f"ExprMap: free symbols {names} are unbound; bind them first")

    @cached_property
    def _c_function(self):
        self._check_bound()
        return compile_expressions(self.expressions, self.coords)

    @cached_property
    def _c_jacobian(self):
        self._check_bound()
        jac = [sympy.diff(e, c) for e in self.expressions for c in self.coords]
        return compile_expressions(jac, self.coords)

    def apply(self, coords):
        coords = np.asarray(coords, dtype=np.float64)
        return np.stack(self._c_function(*coords))

    def jacobian(self, coords) -> np.ndarray:
        """The Jacobian ``d expressions[i] / d coords[j]`` at points ``(ndim, ...)``;
        shape ``(ndim, ndim, ...)``."""
        coords = np.asarray(coords, dtype=np.float64)
        n = self.ndim
        vals = self._c_jacobian(*coords)
        return np.stack(vals).reshape(n, n, *coords.shape[1:])

    # -- inverse ------------------------------------------------------------------------
    def inverse(self, method: str = "auto", tol: float = 1e-10, max_iter: int = 50):
        """The inverse map, exact through :func:`sympy.solve` when possible.

        Parameters
        ----------
        method : {"auto", "symbolic", "numeric"}
            ``"auto"`` solves symbolically when the system is linear in the coordinates
            (:func:`sympy.linsolve`) or can be solved one equation and one coordinate at a
            time with a unique solution each (triangular systems); otherwise it returns the
            numerical inverse. ``"symbolic"`` also tries :func:`sympy.solve` on the whole
            system (which can take very long) and raises if there is no unique solution.
            ``"numeric"`` always returns :class:`InverseExprMap`.
        tol, max_iter
            For the numerical inverse (see :class:`InverseExprMap`).

        Returns
        -------
        ExprMap or InverseExprMap

        Examples
        --------
        >>> import transfuse
        >>> y, x = transfuse.symbols("y x")
        >>> ExprMap([y + x**2 / 10, x - 3], (y, x)).inverse()
        ExprMap((y, x) -> (y - (x + 3)**2/10, x + 3))
        """
        if method not in ("auto", "symbolic", "numeric"):
            raise ValueError(f"method={method!r} must be 'auto', 'symbolic' or 'numeric'")
        if method != "numeric":
            solution = self._solve(full=method == "symbolic")
            if solution is not None:
                return ExprMap(solution, self.coords, self.parameters)
            if method == "symbolic":
                raise ValueError("ExprMap.inverse: sympy found no unique closed-form inverse")
        return InverseExprMap(self, tol=tol, max_iter=max_iter)

    def _solve(self, full: bool):
        """Closed-form inverse expressions in the output symbols, or None."""
        targets = [sympy.Dummy(c.name, real=True) for c in self.coords]
        eqs = [e - t for e, t in zip(self.expressions, targets, strict=True)]
        unknowns = list(self.coords)
        sol = None
        try:
            if all(sympy.Poly(eq, *unknowns).total_degree() <= 1 for eq in eqs):
                sols = sympy.linsolve(eqs, unknowns)
                if len(sols) == 1:
                    (tup,) = sols
                    if not (
                        set().union(*(sympy.sympify(v).free_symbols for v in tup)) & set(unknowns)
                    ):
                        sol = dict(zip(unknowns, tup, strict=True))
        except (sympy.PolynomialError, sympy.polys.polyerrors.GeneratorsNeeded):
            pass
        if sol is None:
            sol = self._solve_triangular(eqs, unknowns)
        if sol is None and full:
            try:
                sols = sympy.solve(eqs, unknowns, dict=True)
            except NotImplementedError:
                sols = []
            if len(sols) == 1 and set(sols[0]) == set(unknowns):
                sol = sols[0]
        if sol is None:
            return None
        back = dict(zip(targets, self.coords, strict=True))
        out = [sympy.simplify(sympy.sympify(sol[c]).xreplace(back)) for c in unknowns]
        if any(e.has(*_NON_REAL) for e in out):
            return None
        return out

    @staticmethod
    def _solve_triangular(eqs, unknowns):
        pending = list(eqs)
        solved: dict = {}
        while pending:
            for eq in pending:
                left = eq.free_symbols & (set(unknowns) - set(solved))
                if len(left) == 1:
                    (var,) = left
                    try:
                        roots = sympy.solve(eq, var)
                    except NotImplementedError:
                        return None
                    if len(roots) != 1:
                        return None
                    solved = {k: v.subs(var, roots[0]) for k, v in solved.items()}
                    solved[var] = roots[0]
                    pending = [p.subs(var, roots[0]) for p in pending if p is not eq]
                    break
            else:
                return None
        if set(solved) != set(unknowns):
            return None
        return solved


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class InverseExprMap(NonlinearTransform):
    """The numerical inverse of an :class:`ExprMap`: for each point ``q``, the ``p`` with
    ``forward(p) == q``, by damped Newton iteration with the sympy-derived Jacobian.

    Newton starts at ``p = q``, takes full steps ``J(p)^-1 (forward(p) - q)`` and halves a
    step (up to 30 times) while it does not reduce the residual. It stops when
    ``max |forward(p) - q| <= tol``. Where it does not converge in ``max_iter`` iterations
    (the map is not invertible there) the best iterate is kept and a RuntimeWarning is
    issued. Its footprint is the whole input (no sound local bound is derived).

    Parameters
    ----------
    forward : ExprMap
    tol : float
        Residual tolerance in coordinate units (max norm).
    max_iter : int

    Examples
    --------
    >>> import numpy as np, sympy, transfuse
    >>> y, x = transfuse.symbols("y x")
    >>> F = ExprMap([y + sympy.sin(x) / 10, x + y**2 / 200], (y, x))
    >>> G = F.inverse()
    >>> type(G).__name__
    'InverseExprMap'
    >>> bool(np.abs(F(G([[3.0, 4.0]])) - [3.0, 4.0]).max() < 1e-10)
    True
    """

    forward: ExprMap = None
    tol: float = 1e-10
    max_iter: int = 50

    def __post_init__(self):
        if not isinstance(self.forward, ExprMap):
            raise ValueError(f"forward={self.forward!r} must be an ExprMap")
        tol = as_scalar(self.tol, "tol")
        if isinstance(tol, sympy.Basic) or not tol > 0:
            raise ValueError(f"tol={self.tol!r} must be a positive number")
        object.__setattr__(self, "tol", tol)
        it = self.max_iter
        if isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 1:
            raise ValueError(f"max_iter={it!r} must be a positive integer")
        object.__setattr__(self, "max_iter", int(it))

    @property
    def ndim(self):
        return self.forward.ndim

    @property
    def free_symbols(self):
        return self.forward.free_symbols

    def _substitute(self, subs):
        return dataclasses.replace(self, forward=self.forward._substitute(subs))

    def inverse(self):
        return self.forward

    def __repr__(self):
        return f"InverseExprMap({self.forward!r}, tol={self.tol:g})"

    def apply(self, coords):
        q = np.asarray(coords, dtype=np.float64)
        shape = q.shape
        n = shape[0]
        q = q.reshape(n, -1)
        f = self.forward
        p = q.copy()
        res = f.apply(p) - q
        err = np.abs(res).max(axis=0)
        active = np.flatnonzero(~(err <= self.tol))
        for _ in range(self.max_iter):
            if active.size == 0:
                break
            pa, ra, ea, qa = p[:, active], res[:, active], err[active], q[:, active]
            jac = np.moveaxis(f.jacobian(pa), (0, 1), (-2, -1))  # (N, n, n)
            with np.errstate(all="ignore"):
                try:
                    step = np.linalg.solve(jac, ra.T[..., None])[..., 0].T
                except np.linalg.LinAlgError:  # a singular Jacobian somewhere
                    step = (np.linalg.pinv(jac) @ ra.T[..., None])[..., 0].T
            step = np.where(np.isfinite(step), step, 0.0)
            t = np.ones(active.size)
            todo = np.ones(active.size, dtype=bool)
            for _ in range(30):  # halve the step until the residual decreases
                cand = pa - t * step
                cr = f.apply(cand) - qa
                ce = np.abs(cr).max(axis=0)
                ok = todo & (ce < ea)
                pa = np.where(ok, cand, pa)
                ra = np.where(ok, cr, ra)
                ea = np.where(ok, ce, ea)
                todo &= ~ok
                if not todo.any():
                    break
                t = np.where(todo, t / 2, t)
            p[:, active], res[:, active], err[active] = pa, ra, ea
            active = active[~(ea <= self.tol) & ~todo]  # drop converged and stuck points
        bad = ~(err <= self.tol)
        if bad.any():
            warnings.warn(
                f"InverseExprMap: Newton did not reach tol={self.tol:g} at {int(bad.sum())} "
                f"point(s) (worst residual {np.nanmax(err):.3g}); the map may not be "
                "invertible there",
                RuntimeWarning,
                stacklevel=2,
            )
        return p.reshape(shape)


# ------------------------------------------------------------------------------------------
# Python callables
# ------------------------------------------------------------------------------------------


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

    def apply(self, coords):
        coords = np.asarray(coords, dtype=np.float64)
        n = self.ndim
        if coords.shape[0] != n:
            raise ValueError(f"FunctionMap: coordinates must have {n} rows, got {coords.shape}")
        flat = coords.reshape(n, -1)
        if self.vectorized:
            out = np.asarray(self.func(flat.copy()), dtype=np.float64)
            if out.shape != flat.shape:
                raise ValueError(
                    f"FunctionMap: func returned shape {out.shape} for input shape {flat.shape}"
                )
        else:
            out = np.empty_like(flat)
            for i in range(flat.shape[1]):
                res = self.func(tuple(float(v) for v in flat[:, i]))
                if len(res) != n:
                    raise ValueError(f"FunctionMap: func returned {res!r}, not {n} coordinates")
                out[:, i] = res
        return out.reshape(coords.shape)

    def bound_boxes(self, lo: np.ndarray, hi: np.ndarray):
        """A box of input points for each box ``[lo, hi]`` of output points (rows)."""
        b = self.bounds
        if b is None:
            return np.full_like(lo, -np.inf), np.full_like(hi, np.inf)
        if callable(b):
            out_lo, out_hi = b(lo.copy(), hi.copy())
            out_lo = np.asarray(out_lo, dtype=np.float64)
            out_hi = np.asarray(out_hi, dtype=np.float64)
            if out_lo.shape != lo.shape or out_hi.shape != hi.shape:
                raise ValueError(
                    f"FunctionMap bounds returned shapes {out_lo.shape}, {out_hi.shape}; "
                    f"expected {lo.shape}"
                )
            return out_lo, out_hi
        m = np.asarray(b)
        return lo - m, hi + m

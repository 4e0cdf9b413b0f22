"""The transform node base class and composition.

Conventions (fixed once for the whole library):

* **Pull direction.** A transform maps *output* coordinates to *input* coordinates, as the
  ``matrix`` of :func:`scipy.ndimage.affine_transform` does.
* **Composition.** ``(A @ B)(p) == A(B(p))``. Resampling an image with ``A`` and then the
  result with ``B`` is one resampling with ``A @ B``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
from functools import cached_property

import numpy as np

from .params import free_symbols_of, is_symbolic
from .sympy_types import is_sympy, is_sympy_expr, is_sympy_symbol

__all__ = ["Transform", "Compose", "unify_ndim", "to_float"]


def unify_ndim(parts, what: str = "transforms") -> int | None:
    """The common dimension of ``parts`` (None if none fixes it).

    Raises
    ------
    ValueError
        If two parts fix different dimensions.
    """
    ndim = None
    owner = None
    for part in parts:
        if part.ndim is None:
            continue
        if ndim is None:
            ndim, owner = part.ndim, part
        elif part.ndim != ndim:
            raise ValueError(
                f"cannot compose {what}: {type(owner).__name__} has ndim={ndim} but "
                f"{type(part).__name__} has ndim={part.ndim}"
            )
    return ndim


def _canonical_expr(expr) -> str:
    """sympy's srepr, except that symbols list their assumptions in sorted order (srepr keeps
    the order they were given in, which would give equal symbols different keys)."""
    if is_sympy_symbol(expr):
        assumptions = ",".join(f"{k}={v}" for k, v in sorted(expr.assumptions0.items()))
        return f"{type(expr).__name__}({expr.name!r},{assumptions})"
    if not expr.args:
        import sympy

        return sympy.srepr(expr)
    return f"{type(expr).__name__}(" + ",".join(_canonical_expr(a) for a in expr.args) + ")"


def canonical(value):
    """A text form of a parameter that differs whenever the value differs (bit for bit)."""
    if isinstance(value, float):
        return value.hex()
    if is_sympy(value):
        return _canonical_expr(value)
    if isinstance(value, tuple):
        return "(" + ",".join(canonical(v) for v in value) + ")"
    if isinstance(value, Transform):
        return value.key
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"ndarray[{value.dtype.str}{value.shape}:{digest}]"
    return repr(value)


@dataclasses.dataclass(frozen=True)
class Transform:
    """Base class of all transform nodes: immutable, hashable, equal by structure.

    Subclasses are frozen dataclasses whose fields are their parameters, normalised in
    ``__post_init__`` (numbers become ``float``, sequences become tuples, sympy expressions
    stay exact).
    """

    #: True for transforms with an (n+1, n+1) homogeneous matrix.
    is_affine = False

    # -- structure ---------------------------------------------------------------------
    @property
    def ndim(self) -> int | None:
        """The dimension the parameters fix, or None when it comes from the context."""
        return None

    def params(self) -> dict:
        """The parameters as a dict of field name to normalised value."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> Transform:
        """A copy with some parameters changed (validated again)."""
        return self._rebuild(**changes)

    def _rebuild(self, **fields) -> Transform:
        return dataclasses.replace(self, **fields)

    @cached_property
    def key(self) -> str:
        """A stable hash of the class and every parameter, used for dask keys and caching."""
        text = type(self).__name__ + canonical(tuple(self.params().values()))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def parts(self) -> tuple[Transform, ...]:
        """The chain of elementary transforms (a single-element tuple for non-compositions)."""
        return (self,)

    # -- symbolic parameters -------------------------------------------------------------
    @property
    def free_symbols(self) -> frozenset:
        """The sympy symbols still free in the parameters."""
        return free_symbols_of(tuple(v for v in self.params().values() if _is_value(v)))

    def bind(self, **values) -> Transform:
        """Substitute numbers for free symbols, by symbol name.

        Parameters
        ----------
        **values : number or sympy expression
            Real numbers (Python or numpy) or sympy expressions. Strings are refused: they
            would be parsed by sympy, which evaluates them as Python code.

        Raises
        ------
        ValueError
            If a name is not a free symbol of the transform, or a value is not a finite real
            number or a sympy expression (a string, a bool, a complex number, ...).
        """
        free = {s.name: s for s in self.free_symbols}
        unknown = sorted(set(values) - set(free))
        if unknown:
            raise ValueError(
                f"bind(): {', '.join(unknown)} not among the free symbols "
                f"{sorted(free) or 'of this transform (it has none)'}"
            )
        subs = {free[name]: _bind_value(name, value) for name, value in values.items()}
        return self._substitute(subs)

    def _substitute(self, subs: dict) -> Transform:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        changes = {name: _subs(value, subs) for name, value in fields.items()}
        return self._rebuild(**changes)

    # -- recipes (the codec lives in transfuse.io, which registers it) ---------------------
    def to_dict(self) -> dict:
        """The transform as a JSON-ready recipe dict (see :mod:`transfuse.io.recipes`)."""
        return recipe_codec().to_dict(self)

    def to_json(self, **kwargs) -> str:
        """The transform as a JSON recipe text; ``transfuse.loads`` reads it back exactly."""
        return recipe_codec().dumps(self, **kwargs)

    # -- algebra -------------------------------------------------------------------------
    def __matmul__(self, other: Transform) -> Transform:
        if not isinstance(other, Transform):
            return NotImplemented
        return Compose((self, other))

    def inverse(self) -> Transform:
        """The transform ``T⁻¹`` with ``T @ T⁻¹`` the identity."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def matrix(self, ndim: int | None = None, exact: bool = False):
        """The homogeneous ``(n+1, n+1)`` matrix (numpy, or exact sympy when symbolic)."""
        raise TypeError(f"{type(self).__name__} is not affine and has no matrix")

    def resolve_ndim(self, ndim: int | None) -> int:
        """Check ``ndim`` against the transform's own and return the one to use."""
        own = self.ndim
        if ndim is None:
            if own is None:
                raise ValueError(
                    f"the dimension of {type(self).__name__} is not fixed by its parameters: "
                    "pass ndim= or compose it with a transform that fixes it"
                )
            return own
        if own is not None and own != ndim:
            raise ValueError(f"{type(self).__name__} has ndim={own}, not ndim={ndim}")
        return int(ndim)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def _repr_latex_(self) -> str:
        """The matrix or expressions as LaTeX (notebooks; see :mod:`transfuse.transforms.latex`)."""
        from .latex import transform_latex

        return transform_latex(self)


def _bind_value(name: str, value):
    """A value :meth:`Transform.bind` may substitute: a sympy expression, an exact
    ``sympy.Integer`` for an integer, a float for another real number."""
    if is_sympy(value):
        if not is_sympy_expr(value):
            raise ValueError(f"bind(): {name}={value!r:.60} is not a sympy expression")
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, str | bytes):
        raise ValueError(
            f"bind(): {name}={value!r:.60} is a string; pass a number or a sympy expression "
            "(strings are not parsed)"
        )
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"bind(): {name}={value!r:.60} must be a real number or a sympy expression"
        )
    if isinstance(value, numbers.Integral):
        import sympy

        return sympy.Integer(int(value))
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"bind(): {name}={value!r} must be finite")
    return value + 0.0


def _is_value(value) -> bool:
    return not isinstance(value, Transform | np.ndarray)


def _subs(value, subs):
    if isinstance(value, tuple):
        return tuple(_subs(v, subs) for v in value)
    if is_sympy(value):
        out = value.subs(subs)
        if not out.free_symbols:
            return to_float(out, "binding gives the value")
        return out
    if isinstance(value, Transform):
        return value._substitute(subs)
    return value


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        inner = ", ".join(_short(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


@dataclasses.dataclass(frozen=True, repr=False)
class Compose(Transform):
    """A chain ``parts[0] @ parts[1] @ ...``: ``p -> parts[0](parts[1](...(p)))``.

    Nested compositions are flattened. Build it with ``@`` rather than directly.

    Examples
    --------
    >>> from transfuse import Translate, Scale
    >>> T = Translate((1.0, 2.0)) @ Scale((2.0, 3.0))
    >>> T.matrix()
    array([[2., 0., 1.],
           [0., 3., 2.],
           [0., 0., 1.]])
    """

    transforms: tuple = ()

    def __post_init__(self):
        flat: list[Transform] = []
        for part in self.transforms:
            if not isinstance(part, Transform):
                raise ValueError(f"transforms: {part!r} is not a Transform")
            flat.extend(part.parts)
        if not flat:
            raise ValueError("transforms: a composition needs at least one transform")
        object.__setattr__(self, "transforms", tuple(flat))
        unify_ndim(flat)

    @property
    def parts(self):
        return self.transforms

    @property
    def is_affine(self):  # type: ignore[override]
        return all(p.is_affine for p in self.transforms)

    @property
    def ndim(self):
        return unify_ndim(self.transforms)

    @property
    def output_shape(self):
        """The output grid of the innermost part where it defines one (a
        :class:`~transfuse.CoordinateMap`, which must be the rightmost part), else None."""
        return getattr(self.transforms[-1], "output_shape", None)

    @property
    def free_symbols(self):
        out: frozenset = frozenset()
        for p in self.transforms:
            out |= p.free_symbols
        return out

    def _substitute(self, subs):
        return Compose(tuple(p._substitute(subs) for p in self.transforms))

    def __call__(self, points):
        for part in reversed(self.transforms):
            points = part(points)
        return points

    def inverse(self):
        return Compose(tuple(p.inverse() for p in reversed(self.transforms)))

    def matrix(self, ndim=None, exact=False):
        ndim = self.resolve_ndim(ndim)
        exact = exact or bool(self.free_symbols)
        mats = [p.matrix(ndim, exact=exact) for p in self.transforms]
        if exact:
            out = mats[0]
            for m in mats[1:]:
                out = out * m
            import sympy

            return out.applyfunc(sympy.simplify)
        out = mats[0]
        for m in mats[1:]:
            out = out @ m
        return out

    def __repr__(self):
        return " @ ".join(repr(p) for p in self.transforms)


_RECIPE_CODEC = []


def register_recipe_codec(load) -> None:
    """Register a function returning the recipe codec (an object with ``to_dict`` and
    ``dumps``); :mod:`transfuse.io` does, so that transforms need not import it."""
    _RECIPE_CODEC[:] = [load]


def recipe_codec():
    """The registered recipe codec."""
    if not _RECIPE_CODEC:
        raise RuntimeError("no recipe codec registered: import transfuse.io first")
    return _RECIPE_CODEC[0]()


def symbolic_or_numeric(entries, symbolic: bool):
    """Turn a nested list of scalars into a numpy float array or an exact sympy Matrix.

    The result is a sympy Matrix when ``symbolic`` is asked for or when an entry has free
    symbols. Otherwise it is float64: sympy entries without free symbols (``pi / 4``,
    ``Rational(1, 2)``, ``cos(pi**2 / 18)``) are evaluated by sympy to 20 significant digits
    and then rounded to float64.

    Raises
    ------
    ValueError
        If a constant sympy entry is not a finite real number.
    """
    rows = tuple(tuple(row) for row in entries)
    if symbolic or free_symbols_of(rows):
        import sympy

        return sympy.Matrix([[_exact(v) for v in row] for row in entries])
    if is_symbolic(rows):
        return np.array([[to_float(v) for v in row] for row in rows], dtype=np.float64)
    return np.array(entries, dtype=np.float64)


def to_float(value, what: str = "matrix entry") -> float:
    """``value`` (a number, or a sympy expression without free symbols) as a finite float:
    sympy evaluates it to 20 significant digits, then it is rounded to float64.

    Raises
    ------
    ValueError
        Naming ``what``, when the value is not a finite real number or sympy fails to
        evaluate it.
    """
    if not is_sympy(value):
        return float(value)
    try:
        out = float(value.evalf(20))
    except Exception as exc:  # not real, or an error inside sympy's evaluation
        raise ValueError(f"{what} {str(value)[:80]} is not a real number") from exc
    if not math.isfinite(out):
        raise ValueError(f"{what} {str(value)[:80]} is not a finite number")
    return out + 0.0


def _exact(value):
    """A sympy number equal to ``value``: integers stay integers, other floats keep their bits."""
    import sympy

    if isinstance(value, sympy.Basic):
        return value
    if float(value).is_integer():
        return sympy.Integer(int(value))
    return sympy.Float(value)

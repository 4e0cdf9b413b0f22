"""Normalisation and checking of transform parameters.

Every numeric parameter of a transform is stored either as a Python ``float`` or as a sympy
expression, so that transforms compare, hash and serialise exactly.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .sympy_types import is_sympy, is_sympy_expr, is_sympy_matrix

__all__ = [
    "MODES",
    "symbols",
    "as_scalar",
    "as_vector",
    "as_axes",
    "as_ndim",
    "is_symbolic",
    "free_symbols_of",
]

#: Every boundary mode of scipy.ndimage, with its canonical name (``grid-mirror`` is
#: ``reflect``). Transforms that sample data (displacement fields) and the planner share it.
MODES = {
    "constant": "constant",
    "grid-constant": "grid-constant",
    "nearest": "nearest",
    "reflect": "reflect",
    "grid-mirror": "reflect",
    "mirror": "mirror",
    "wrap": "wrap",
    "grid-wrap": "grid-wrap",
}


def symbols(names: str, **assumptions):
    """Create sympy symbols for use as transform parameters.

    Symbols are real unless told otherwise, which lets sympy simplify trigonometric
    compositions exactly.

    Parameters
    ----------
    names : str
        Names separated by spaces or commas, as in :func:`sympy.symbols`.
    **assumptions
        Extra sympy assumptions (``positive=True``, ...).

    Returns
    -------
    sympy.Symbol or tuple of sympy.Symbol

    Examples
    --------
    >>> import transfuse
    >>> theta = transfuse.symbols("theta")
    >>> transfuse.Rotate(theta).free_symbols
    frozenset({theta})
    """
    import sympy

    assumptions.setdefault("real", True)
    return sympy.symbols(names, **assumptions)


def is_symbolic(value) -> bool:
    """True when ``value`` (a scalar or nested tuple) holds a sympy expression."""
    if isinstance(value, tuple):
        return any(is_symbolic(v) for v in value)
    return is_sympy(value)


def free_symbols_of(value) -> frozenset:
    """Free sympy symbols of a scalar or of a nested tuple of scalars."""
    if isinstance(value, tuple):
        out: frozenset = frozenset()
        for v in value:
            out |= free_symbols_of(v)
        return out
    if is_sympy(value):
        return frozenset(value.free_symbols)
    return frozenset()


def as_scalar(value, name: str):
    """Return ``value`` as a finite float or a sympy expression.

    Raises
    ------
    ValueError
        If the value is not a real number, is NaN or infinite; the message names ``name``.
    """
    if is_sympy(value):
        if not is_sympy_expr(value):
            raise ValueError(f"{name}={value!r} is not a sympy expression")
        if value.free_symbols:
            return value
        import sympy

        if value.is_real is False or value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise ValueError(f"{name}={value!r} is not a finite real number")
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} is not a real number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    return value + 0.0  # -0.0 -> 0.0: equal values get equal keys


def as_vector(value, name: str, length: int | None = None) -> tuple:
    """Return a 1-D sequence of scalars as a tuple (see :func:`as_scalar`).

    Raises
    ------
    ValueError
        If ``value`` is not one-dimensional, has the wrong length or holds a bad number.
    """
    if is_sympy_matrix(value):
        value = list(value)
    if is_sympy(value) or np.ndim(value) == 0:
        raise ValueError(f"{name}={value!r} must be a sequence of numbers")
    items = list(value) if not isinstance(value, np.ndarray) else list(value.reshape(-1))
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {value.shape}")
    if any(np.ndim(v) != 0 and not is_sympy(v) for v in items):
        raise ValueError(f"{name}={value!r} must be a flat sequence of numbers")
    if length is not None and len(items) != length:
        raise ValueError(f"{name}={value!r} must have {length} entries, got {len(items)}")
    if not items:
        raise ValueError(f"{name} must not be empty")
    return tuple(as_scalar(v, f"{name}[{i}]") for i, v in enumerate(items))


def as_axes(value, name: str, count: int | None = None) -> tuple[int, ...]:
    """Return a tuple of non-negative axis indices, rejecting duplicates and non-integers."""
    items = [value] if np.ndim(value) == 0 else list(value)
    out = []
    for v in items:
        if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name}={value!r} must hold integer axis indices")
        out.append(int(v))
    if count is not None and len(out) != count:
        raise ValueError(f"{name}={value!r} must hold exactly {count} axes")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={value!r} repeats an axis")
    return tuple(out)


def as_ndim(value, name: str = "ndim", minimum: int = 1) -> int:
    """Return a dimension given as a Python or numpy integer as an ``int``.

    Raises
    ------
    ValueError
        For booleans, non-integers (floats, strings) and integers below ``minimum``.

    Examples
    --------
    >>> import numpy as np
    >>> as_ndim(np.int64(3))
    3
    >>> as_ndim(2.0)
    Traceback (most recent call last):
    ...
    ValueError: ndim=2.0 must be an integer >= 1
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r:.60} must be an integer >= {minimum}")
    if int(value) < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)

"""LaTeX text of transforms (pure sympy): what ``Transform._repr_latex_`` shows in notebooks.

Affine runs show their homogeneous pull matrix (exact, symbols stay symbols), expression maps
their expressions, other maps a short description; a chain shows its pieces joined by
``\\circ`` (``A \\circ B`` maps ``p`` to ``A(B(p))``, as ``A @ B`` does).
"""

from __future__ import annotations

import sympy

__all__ = ["transform_latex"]

#: Parts of a chain drawn at most; longer chains are cut with an ellipsis.
MAX_PARTS = 12


def _number(value, digits: int = 4):
    """A compact sympy number: integers stay integers, other floats keep ``digits``."""
    if isinstance(value, sympy.Basic) and value.free_symbols:
        return value
    v = float(value)
    if abs(v) < 1e15 and abs(v - round(v)) <= 1e-12 * max(1.0, abs(v)):
        return sympy.Integer(round(v))
    return sympy.Float(v, digits)


#: Operations in a symbolic product above which it is shown unsimplified (sympy's simplify
#: takes about 0.4 s at 60 operations and grows fast; a display should stay quick).
MAX_SIMPLIFY_OPS = 100


def _matrix_latex(part, ndim) -> str:
    symbolic = bool(part.free_symbols)
    if symbolic and len(part.parts) > 1:
        mats = [p.matrix(ndim, exact=True) for p in part.parts]
        m = mats[0]
        for other in mats[1:]:
            m = m * other
        if sympy.count_ops(m) <= MAX_SIMPLIFY_OPS:
            m = m.applyfunc(sympy.simplify)
    else:
        m = part.matrix(ndim, exact=symbolic)
    if not symbolic:
        m = sympy.Matrix(m.tolist()).applyfunc(_number)
    return sympy.latex(m, mat_delim="[")


def _vector(symbols) -> str:
    return r"\begin{pmatrix}" + r" \\ ".join(sympy.latex(s) for s in symbols) + r"\end{pmatrix}"


def _text(s: str) -> str:
    for a, b in (("\\", r"\backslash "), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("#", r"\#")):
        s = s.replace(a, b)
    return r"\text{" + s + "}"


def _nonlinear_latex(part) -> str:
    name = type(part).__name__
    if name == "ExprMap":
        return _vector(part.coords) + r" \mapsto " + _vector(part.expressions)
    if name == "InverseExprMap":
        return r"\left(" + _nonlinear_latex(part.forward) + r"\right)^{-1}"
    if name == "DisplacementField":
        grid = "x".join(str(n) for n in part.grid_shape)
        spacing = ", ".join(f"{v:g}" for v in part.spacing)
        return r"p \mapsto p + u(p),\ " + _text(
            f"u on a {grid} grid, spacing ({spacing}), order {part.order}"
        )
    if name == "CoordinateMap":
        shape = "x".join(str(n) for n in part.output_shape)
        return r"p \mapsto C[:, p],\ " + _text(f"coordinates on a {shape} grid")
    if name == "FunctionMap":
        fname = getattr(part.func, "__qualname__", type(part.func).__name__)
        return r"p \mapsto " + _text(fname) + "(p)"
    return _text(repr(part))


def _affine_group_latex(parts, ndim) -> str:
    from .base import Compose

    group = parts[0] if len(parts) == 1 else Compose(tuple(parts))
    if ndim is not None:
        return _matrix_latex(group, ndim)
    for n in (2, 3):  # the parameters do not fix the dimension: show the smallest that fits
        try:
            return _matrix_latex(group, n) + _text(f" (as {n}-D)")
        except (ValueError, TypeError):
            continue
    return r" \circ ".join(_text(repr(p)) for p in parts)


def transform_latex(transform, ndim: int | None = None) -> str:
    """The transform as LaTeX math (with ``$`` delimiters), for notebooks.

    Consecutive affine parts of a chain are multiplied into one matrix (a symbolic product
    is simplified while it is small: :data:`MAX_SIMPLIFY_OPS`); each non-linear part shows
    its expressions or a short description; parts are joined with ``\\circ``.

    Parameters
    ----------
    transform : Transform
    ndim : int, optional
        The dimension, for transforms whose parameters do not fix it.

    Examples
    --------
    >>> import transfuse
    >>> theta = transfuse.symbols("theta")
    >>> text = transform_latex(transfuse.Rotate(theta, ndim=2))
    >>> r"\\theta" in text and text.startswith("$")
    True
    >>> print(transform_latex(transfuse.Scale((0.5,))))
    $\\displaystyle \\left[\\begin{matrix}0.5 & 0\\\\0 & 1\\end{matrix}\\right]$
    """
    if ndim is None:
        ndim = transform.ndim
    pieces: list[str] = []
    affine: list = []
    parts = transform.parts
    cut = len(parts) > MAX_PARTS
    for part in parts[:MAX_PARTS]:
        if part.is_affine:
            affine.append(part)
            continue
        if affine:
            pieces.append(_affine_group_latex(affine, ndim))
            affine = []
        text = _nonlinear_latex(part)
        pieces.append(text if len(parts) == 1 else r"\left(" + text + r"\right)")
    if affine:
        pieces.append(_affine_group_latex(affine, ndim))
    if cut:
        pieces.append(_text(f"... ({len(parts) - MAX_PARTS} more)"))
    return r"$\displaystyle " + r" \circ ".join(pieces) + "$"

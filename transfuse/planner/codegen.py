"""sympy expressions to numpy source text (the form an :class:`ExprStage` carries).

Every symbol is renamed before printing: point coordinates become ``x0, x1, ...`` and float
constants become arguments ``c0, c1, ...`` (so they keep every bit; printing would round
them to 15 digits). A coordinate named ``pi``, ``e`` or ``sin`` therefore cannot collide
with a constant or a function, and no user text reaches the source.
"""

from __future__ import annotations

from .physical import ExprStage

__all__ = ["expression_stage"]

_PRINTER_SETTINGS = {"fully_qualified_modules": True, "inline": True}


def expression_stage(expressions, coords, name: str = "expression_map", bounded=True):
    """An :class:`ExprStage` computing ``expressions`` (sympy, one per input axis) of the
    point coordinates ``coords`` (sympy symbols, in axis order).

    Examples
    --------
    >>> import sympy
    >>> y, x = sympy.symbols("y x")
    >>> stage = expression_stage([y + 0.25 * sympy.sin(x), 2 * x], [y, x])
    >>> print(stage.source)
    def expression_map(x0, x1, c0):
        return (c0*numpy.sin(x1) + x0, 2*x1)
    >>> stage.constants
    (0.25,)
    """
    import sympy
    from sympy.printing.numpy import SciPyPrinter

    coords = list(coords)
    point_names = [sympy.Symbol(f"x{i}", real=True) for i in range(len(coords))]
    rename = dict(zip(coords, point_names, strict=True))
    exprs = [sympy.sympify(e).xreplace(rename) for e in expressions]
    floats = sorted(set().union(*(e.atoms(sympy.Float) for e in exprs)), key=sympy.srepr)
    const_names = [sympy.Symbol(f"c{i}", real=True) for i in range(len(floats))]
    exprs = [e.xreplace(dict(zip(floats, const_names, strict=True))) for e in exprs]
    stray = set().union(*(e.free_symbols for e in exprs)) - set(point_names) - set(const_names)
    if stray:
        raise ValueError(f"unbound symbols {sorted(map(str, stray))} in an expression map")
    temps, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("t"))
    printer = SciPyPrinter(_PRINTER_SETTINGS)
    args = ", ".join(str(s) for s in (*point_names, *const_names))
    lines = [f"def {name}({args}):"]
    for sym, value in temps:
        lines.append(f"    {sym} = {printer.doprint(value)}")
    body = ", ".join(printer.doprint(e) for e in reduced)
    lines.append(f"    return ({body}{',' if len(reduced) == 1 else ''})")
    text = (
        "("
        + ", ".join(str(c) for c in coords)
        + ") -> ("
        + ", ".join(str(e) for e in expressions)
        + ")"
    )
    return ExprStage(
        source="\n".join(lines),
        function_name=name,
        ndim_out=len(coords),
        ndim_in=len(exprs),
        constants=tuple(float(f) for f in floats),
        text=text,
        bounded=bounded,
    )

"""Type checks for sympy values that do not import sympy.

Importing sympy costs about as much as the rest of transfuse's imports together, and a
plain rotation never needs it. A value can only be a sympy object once sympy has been
imported, so each check below looks in ``sys.modules`` first: while sympy is not imported
the answer is False and nothing is imported. Code that *makes* sympy objects imports
sympy itself, in the function that needs it.

Examples
--------
>>> is_sympy(1.5)
False
>>> import sympy
>>> is_sympy(sympy.pi), is_sympy_expr(sympy.pi), is_sympy_matrix(sympy.eye(2))
(True, True, True)
"""

from __future__ import annotations

import sys

__all__ = ["is_sympy", "is_sympy_expr", "is_sympy_matrix", "is_sympy_symbol"]


def _sympy_class(name: str):
    """``sympy.<name>`` when sympy is imported (fully enough to have it), else None."""
    return getattr(sys.modules.get("sympy"), name, None)


def _is(value, name: str) -> bool:
    cls = _sympy_class(name)
    return cls is not None and isinstance(value, cls)


def is_sympy(value) -> bool:
    """``isinstance(value, sympy.Basic)``, without importing sympy."""
    return _is(value, "Basic")


def is_sympy_expr(value) -> bool:
    """``isinstance(value, sympy.Expr)``, without importing sympy."""
    return _is(value, "Expr")


def is_sympy_matrix(value) -> bool:
    """``isinstance(value, sympy.MatrixBase)``, without importing sympy."""
    return _is(value, "MatrixBase")


def is_sympy_symbol(value) -> bool:
    """``isinstance(value, sympy.Symbol)``, without importing sympy."""
    return _is(value, "Symbol")

"""Mapping points through non-linear transforms (``T(points)``, ``T.apply(coords)``).

Transforms never evaluate themselves: a non-linear transform is lowered to physical stages
by the planner and evaluated by the reference executor, exactly as inside a resampling
task. This module is registered with :mod:`transfuse.transforms` when transfuse is
imported.
"""

from __future__ import annotations

import numpy as np

from .executors.scipy_backend import ScipyExecutor
from .executors.spline import field_coefficients
from .executors.stages import compile_expression
from .planner.codegen import expression_stage
from .planner.lower import compile_map

__all__ = ["PointEvaluator"]


class PointEvaluator:
    """Evaluates transforms at points ``(ndim, ...)`` with the reference executor.

    Examples
    --------
    >>> import numpy as np, transfuse
    >>> y, x = transfuse.symbols("y x")
    >>> T = transfuse.ExprMap([y + x**2, x], (y, x))
    >>> PointEvaluator().points(T, np.array([[1.0], [2.0]]))
    array([[5.],
           [2.]])
    """

    def __init__(self):
        self.backend = ScipyExecutor()

    def points(self, transform, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64)
        compiled = compile_map(transform, coords.shape[0], spline_filter=field_coefficients)
        return self.backend.points(compiled.stages, coords)

    def jacobian(self, expr_map, coords: np.ndarray) -> np.ndarray:
        import sympy

        n = expr_map.ndim
        jac = [sympy.diff(e, c) for e in expr_map.expressions for c in expr_map.coords]
        stage = expression_stage(jac, expr_map.coords, "jacobian")
        values = compile_expression(stage)(*np.asarray(coords, dtype=np.float64))
        return np.stack(values).reshape(n, n, *np.shape(coords)[1:])
